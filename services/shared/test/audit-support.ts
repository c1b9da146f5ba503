import { generateKeyPairSync, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { QueryTypes, Sequelize } from 'sequelize';
import { provision } from '@vextrus/migrations';
import { createPlane, type TestPlane } from '@vextrus/devkit';
import {
  auditRouter,
  createLogger,
  recordAudit,
  sealAudit,
  withTenantTransaction,
  createTenantDirectory,
  createTokenVerifier,
  startService,
  staticKeySource,
  type AuditEvent,
  type AuditRouterOptions,
  type Logger,
  type Role,
  type RunningService,
  type TenantContext,
  type TokenVerifier,
} from '@vextrus/shared';

/** A plane with provisioned tenants and a pool that logs in as the application role. */
export interface AuditPlane {
  plane: TestPlane;
  app: Sequelize;
  tenants: Record<string, TenantContext & { slug: string }>;
  /** Runs SQL as the cluster superuser (the owner's powers and more: bypassing the app). */
  superuser(text: string, values?: unknown[]): Promise<pg.QueryResult>;
  close(): Promise<void>;
}

export async function createAuditPlane(prefix: string, slugs: string[]): Promise<AuditPlane> {
  const plane = await createPlane(prefix);
  const tenants: AuditPlane['tenants'] = {};
  for (const slug of slugs) {
    const result = await provision(plane.db, slug);
    tenants[slug] = { slug, tenantId: result.tenantId, schema: result.schema, role: result.role };
  }
  const app = new Sequelize(plane.appUrl, { logging: false, pool: { max: 20 } });
  return {
    plane,
    app,
    tenants,
    async superuser(text, values) {
      const client = new pg.Client({ connectionString: plane.database.url });
      await client.connect();
      try {
        return await client.query(text, values);
      } finally {
        await client.end();
      }
    },
    async close() {
      await app.close();
      await plane.close();
    },
  };
}

/** The error a promise rejects with; fails when it resolves. */
export async function failure(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (err: Error) => err,
  );
}

/** The PostgreSQL error under Sequelize's (and the audit module's) wrappers. */
export function pgError(err: unknown): { code?: string; message: string } {
  let current = err as { original?: unknown; cause?: unknown; code?: string; message: string };
  while (current.original ?? current.cause) {
    current = (current.original ?? current.cause) as typeof current;
  }
  return current;
}

export const POLICY = { issuer: 'vextrus-auth', audience: 'vextrus-api' };

/** An ES256 signing key and the verifier that trusts it. */
export interface TokenMint {
  verifier: TokenVerifier;
  /** An access token of the tenant with these roles. */
  token(tenant: TenantContext & { slug: string }, roles: Role[], userId?: string): string;
}

export function createTokenMint(): TokenMint {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'audit-test', alg: 'ES256' };
  return {
    verifier: createTokenVerifier(POLICY, staticKeySource([jwk])),
    token(tenant, roles, userId = randomUUID()) {
      return jwt.sign({ tid: tenant.tenantId, tenant: tenant.slug, roles }, privateKey, {
        algorithm: 'ES256',
        keyid: 'audit-test',
        issuer: POLICY.issuer,
        audience: POLICY.audience,
        subject: userId,
        jwtid: randomUUID(),
        expiresIn: 600,
      });
    },
  };
}

/** How a test's audit service differs from the default one. */
export interface AuditServiceOptions extends Pick<
  AuditRouterOptions,
  'exportBatchSize' | 'exportStallMs' | 'lockWaitMs' | 'maxConcurrentLongReads'
> {
  /** The service's pool size (DATABASE_POOL_MAX). */
  poolMax?: number;
  /** The database URL instead of the plane's application role URL. */
  databaseUrl?: string;
  /** How long the tenant directory keeps an entry (default 0: every request looks it up). */
  directoryTtlMs?: number;
}

/** Starts a service on a free loopback port that mounts the audit router at /audit. */
export async function startAuditService(
  t: AuditPlane,
  mint: TokenMint,
  options: AuditServiceOptions = {},
): Promise<RunningService> {
  const { poolMax, databaseUrl, directoryTtlMs, ...router } = options;
  return startService(
    {
      name: 'audit-test',
      defaultPort: 0,
      routes: (app, runtime) => {
        app.use(
          '/audit',
          auditRouter({
            sequelize: runtime.sequelize,
            directory: createTenantDirectory(runtime.sequelize, directoryTtlMs ?? 0),
            verifier: mint.verifier,
            logger: runtime.logger,
            ...router,
          }),
        );
      },
    },
    {
      env: {
        DATABASE_URL: databaseUrl ?? t.plane.appUrl,
        ...(poolMax === undefined ? {} : { DATABASE_POOL_MAX: String(poolMax) }),
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'silent',
      },
    },
  );
}

/** Sessions of the application role still inside a transaction (or running a statement). */
async function busySessions(t: AuditPlane): Promise<number> {
  const { rows } = await t.superuser(
    `SELECT count(*)::int AS busy FROM pg_stat_activity
      WHERE datname = current_database() AND usename <> current_user
        AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')`,
  );
  return (rows[0] as { busy: number }).busy;
}

/** Waits (up to 10 s) until no session of the application role is in a transaction. */
export async function settled(t: AuditPlane): Promise<number> {
  let busy = await busySessions(t);
  for (let tries = 0; tries < 100 && busy !== 0; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    busy = await busySessions(t);
  }
  return busy;
}

/**
 * The tenant's records as the application role reads them, oldest first, after sealing what is
 * pending (as every reader of the log does: records are chained after their commit).
 */
export async function sealedEvents<T extends object>(
  app: Sequelize,
  tenant: TenantContext,
): Promise<T[]> {
  await sealAudit(app, tenant);
  return withTenantTransaction(app, tenant, () =>
    app.query<T>('SELECT * FROM audit_events ORDER BY sequence', { type: QueryTypes.SELECT }),
  );
}

/** Records of the tenant committed but not yet chained, counted past row-level security. */
export async function pendingCount(t: AuditPlane, tenant: TenantContext): Promise<number> {
  const { rows } = await t.superuser(
    `SELECT count(*)::int AS n FROM ${tenant.schema}.audit_pending`,
  );
  return (rows[0] as { n: number }).n;
}

/** The resource ids of the chained records of an action, oldest first, read without sealing. */
export async function chainedIds(
  t: AuditPlane,
  tenant: TenantContext,
  action: string,
): Promise<string[]> {
  const { rows } = await t.superuser(
    `SELECT resource_id FROM ${tenant.schema}.audit_events WHERE action = $1 ORDER BY sequence`,
    [action],
  );
  return rows.map((row: { resource_id: string }) => row.resource_id);
}

/** One audited transaction of the tenant that records `event` and nothing else. */
export function recordIn(db: Sequelize, tenant: TenantContext, event: AuditEvent): Promise<void> {
  return withTenantTransaction(db, tenant, () => recordAudit(event));
}

/** A logger whose lines a test reads back, parsed. */
export function captureLogger(service: string): {
  lines: Record<string, unknown>[];
  logger: Logger;
} {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    service,
    level: 'debug',
    destination: {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    },
  });
  return { lines, logger };
}
