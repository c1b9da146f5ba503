import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { provision } from '@vextrus/migrations';
import { createPlane, type TestPlane } from '@vextrus/devkit';
import {
  startService,
  staticKeySource,
  type PublicJwk,
  type RunningService,
} from '@vextrus/shared';
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

export async function startHarness(
  prefix: string,
  env: Record<string, string> = {},
): Promise<Harness> {
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
        ...env,
      },
    },
  );
  // One user per tenant, so that retries with an Idempotency-Key come from the same caller.
  const users = new Map([alpha, bravo].map((t) => [t.slug, randomUUID()]));
  const token = (tenant: TestTenant, roles = ['tenant_admin'], claims = {}): string =>
    sign(privateKey, {
      sub: users.get(tenant.slug),
      tid: tenant.tenantId,
      tenant: tenant.slug,
      roles,
      ...claims,
    });

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

/** A valid create body for each kind of record. */
export function createBody(entity: string, code: string): Record<string, unknown> {
  return entity === 'organization' ? organizationBody(code) : { code, name: `${code} name` };
}

/** A valid PATCH body for each kind of record. */
export function patchBody(entity: string, text = 'Renamed'): Record<string, unknown> {
  return entity === 'organization' ? { displayName: text } : { name: text };
}

/** One record of each kind, created through the API in one tenant. */
export interface Tree {
  organization: string;
  branch: string;
  division: string;
  project: string;
  site: string;
}

export async function createTree(h: Harness, tenant: TestTenant, prefix: string): Promise<Tree> {
  const post = async (path: string, body: unknown): Promise<string> => {
    const response = await h.call('POST', path, { tenant, body });
    if (response.status !== 201) {
      throw new Error(`POST ${path} answered ${response.status}: ${JSON.stringify(response.body)}`);
    }
    return (response.body as { id: string }).id;
  };
  const organization = await post('/org/organizations', organizationBody(`${prefix}-ORG`));
  const branch = await post(`/org/organizations/${organization}/branches`, {
    code: `${prefix}-BR`,
    name: 'Branch',
  });
  const division = await post(`/org/organizations/${organization}/divisions`, {
    code: `${prefix}-DIV`,
    name: 'Division',
    branchId: branch,
  });
  const project = await post(`/org/organizations/${organization}/projects`, {
    code: `${prefix}-PRJ`,
    name: 'Project',
    branchId: branch,
  });
  const site = await post(`/org/projects/${project}/sites`, {
    code: `${prefix}-SITE`,
    name: 'Site',
  });
  return { organization, branch, division, project, site };
}
