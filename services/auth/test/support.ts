import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { provision, seedAdmin, type ProvisionResult } from '@vextrus/migrations';
import { createPlane, type TestPlane } from '@vextrus/devkit';
import { startService, type RunningService } from '@vextrus/shared';
import { QueryTypes } from 'sequelize';
import { authService } from '../src/index.js';
import type { AuthConfig } from '../src/config.js';

/** A strong password that passes the rules. */
export const PASSWORD = 'correct horse battery staple';

/** Collects the service's JSON log lines. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export interface CallOptions {
  tenant?: string;
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One HTTP call to a service under test. */
export async function call(
  base: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.tenant) headers['X-Tenant-ID'] = options.tenant;
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
  };
}

export interface AuthHarness {
  plane: TestPlane;
  keysDir: string;
  start(
    env?: NodeJS.ProcessEnv,
  ): Promise<{ service: RunningService<AuthConfig>; logs: LogCapture }>;
  /** Provisions a tenant and completes its administrator's setup; returns the admin's session. */
  tenantWithAdmin(
    slug: string,
    base: string,
    email?: string,
  ): Promise<{ tenant: ProvisionResult; session: Record<string, unknown> }>;
  /** The audit records of a tenant with this action, read as the superuser. */
  audits(schema: string, action: string): Promise<AuditRow[]>;
  close(): Promise<void>;
}

export interface AuditRow {
  action: string;
  outcome: string;
  actor_user_id: string | null;
  resource_id: string | null;
  details: Record<string, unknown> | null;
}

export async function createAuthHarness(prefix: string): Promise<AuthHarness> {
  const plane = await createPlane(prefix);
  const keysDir = await mkdtemp(join(tmpdir(), 'vextrus-auth-keys-'));
  const running: RunningService<AuthConfig>[] = [];
  return {
    plane,
    keysDir,
    async start(env = {}) {
      const logs = new LogCapture();
      const service = await startService(authService, {
        env: {
          DATABASE_URL: plane.appUrl,
          PORT: '0',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'debug',
          AUTH_LOCAL_KEYS_DIR: keysDir,
          ...env,
        },
        logDestination: logs,
      });
      running.push(service);
      return { service, logs };
    },
    async tenantWithAdmin(slug, base, email = `admin@${slug}.example`) {
      const tenant = await provision(plane.db, slug);
      const seeded = await seedAdmin(plane.db, slug, { email, name: 'Admin' });
      const answer = await call(base, 'POST', '/auth/setup', {
        tenant: slug,
        body: { token: seeded.setupToken, password: PASSWORD },
      });
      if (answer.status !== 200) throw new Error(`setup failed: ${JSON.stringify(answer.body)}`);
      return { tenant, session: answer.body };
    },
    async audits(schema, action) {
      await plane.sealAudit(schema);
      return plane.db.sequelize.query<AuditRow>(
        `SELECT action, outcome, actor_user_id, resource_id, details
           FROM "${schema}".audit_events WHERE action = $1 ORDER BY sequence`,
        { bind: [action], type: QueryTypes.SELECT },
      );
    },
    async close() {
      await Promise.all(running.map((service) => service.stop()));
      await plane.close();
      await rm(keysDir, { recursive: true, force: true });
    },
  };
}

/** A problem body without what differs between any two requests. */
export function comparable(body: Record<string, unknown>): Record<string, unknown> {
  const { requestId: _requestId, ...rest } = body;
  return rest;
}
