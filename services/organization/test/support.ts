import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { provision } from '@vextrus/migrations';
import { createPlane, type TestPlane } from '@vextrus/devkit';
import { startService, staticKeySource, type PublicJwk, type RunningService } from '@vextrus/shared';
import { createOrganizationService, type OrganizationConfig } from '../src/index.js';

export interface TestTenant {
  slug: string;
  tenantId: string;
}

export interface Response {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read JSON bodies freely.
  body: any;
}

export interface CallOptions {
  tenant?: TestTenant;
  roles?: string[];
  body?: unknown;
  headers?: Record<string, string>;
  /** Sends no Authorization header. */
  anonymous?: boolean;
}

/** A running organization service on a fresh plane with two provisioned tenants. */
export interface Harness {
  plane: TestPlane;
  service: RunningService<OrganizationConfig>;
  alpha: TestTenant;
  bravo: TestTenant;
  token(tenant: TestTenant, roles?: string[], claims?: Record<string, unknown>): string;
  call(method: string, path: string, options?: CallOptions): Promise<Response>;
  close(): Promise<void>;
}

const KID = 'test-key-1';

export async function startHarness(prefix: string): Promise<Harness> {
  const plane = await createPlane(prefix);
  const [a, b] = [await provision(plane.db, 'alpha'), await provision(plane.db, 'bravo')];
  const alpha = { slug: 'alpha', tenantId: a.tenantId };
  const bravo = { slug: 'bravo', tenantId: b.tenantId };

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: KID, alg: 'ES256', use: 'sig' };
  const service = await startService(
    createOrganizationService({ keySource: staticKeySource([jwk as PublicJwk]) }),
    {
      env: {
        DATABASE_URL: plane.appUrl,
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      },
    },
  );
  const token = (tenant: TestTenant, roles = ['tenant_admin'], claims = {}): string =>
    sign(privateKey, { tid: tenant.tenantId, tenant: tenant.slug, roles, ...claims });

  const call = async (method: string, path: string, options: CallOptions = {}) => {
    const tenant = options.tenant ?? alpha;
    const headers: Record<string, string> = { 'X-Tenant-ID': tenant.slug, ...options.headers };
    if (!options.anonymous) headers.Authorization = `Bearer ${token(tenant, options.roles)}`;
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(`${service.url}${path}`, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      body: text ? (JSON.parse(text) as unknown) : undefined,
    };
  };

  return {
    plane,
    service,
    alpha,
    bravo,
    token,
    call,
    close: async () => {
      await service.stop();
      await plane.close();
    },
  };
}

function sign(key: KeyObject, claims: Record<string, unknown>): string {
  return jwt.sign({ ...claims }, key, {
    algorithm: 'ES256',
    keyid: KID,
    issuer: 'vextrus-auth',
    audience: 'vextrus-api',
    subject: randomUUID(),
    jwtid: randomUUID(),
    expiresIn: 300,
  });
}

/** A valid organization body with a given code. */
export function organizationBody(code: string, extra: Record<string, unknown> = {}) {
  return {
    code,
    legalName: `${code} Limited`,
    displayName: `${code} Group`,
    country: 'BD',
    currency: 'BDT',
    timeZone: 'Asia/Dhaka',
    ...extra,
  };
}
