import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { QueryTypes, type Sequelize } from 'sequelize';
import { AppError } from '../http/errors.js';
import { tenantErrors } from '../tenancy/errors.js';
import { withTenantTransaction, type TenantContext } from '../tenancy/context.js';

/** A tenant as the services see it in platform.tenants. */
export interface TenantEntry extends TenantContext {
  slug: string;
  status: string;
}

export interface LookupOptions {
  /**
   * Asks the database even when the slug is cached, and caches the answer: for a cached entry
   * that a caller has reason to doubt (a token names another id for the slug: the tenant was
   * deleted and created again), and for the routes that start sessions.
   */
  fresh?: boolean;
}

export interface TenantDirectory {
  lookup(slug: string, options?: LookupOptions): Promise<TenantEntry | undefined>;
}

/** What may name a tenant: a DNS label (every provisioned slug is one, and shorter). */
const SLUG = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Reads platform.tenants (the application role may only SELECT it), caching each answer
 * briefly. A name that cannot be a slug is unknown without a query. The cache holds at most
 * `maxEntries` names, unknown ones included, so that requests naming ever new tenants (any
 * client can send any X-Tenant-ID, or a host under a wildcard domain) cannot fill the memory:
 * when it is full, the expired entries go first, then the oldest.
 */
export function createTenantDirectory(
  sequelize: Sequelize,
  ttlMs = 15_000,
  maxEntries = 10_000,
): TenantDirectory {
  const cache = new Map<string, { entry: TenantEntry | undefined; until: number }>();
  const remember = (slug: string, entry: TenantEntry | undefined): void => {
    const now = Date.now();
    cache.delete(slug);
    if (cache.size >= maxEntries) {
      for (const [name, cached] of cache) if (cached.until <= now) cache.delete(name);
    }
    // A Map iterates in insertion order: the first key is the oldest.
    for (const name of cache.keys()) {
      if (cache.size < maxEntries) break;
      cache.delete(name);
    }
    cache.set(slug, { entry, until: now + ttlMs });
  };
  return {
    async lookup(slug, options = {}) {
      if (!SLUG.test(slug)) return undefined;
      const hit = options.fresh ? undefined : cache.get(slug);
      if (hit && hit.until > Date.now()) return hit.entry;
      const [row] = await sequelize.query<{
        id: string;
        schema_name: string;
        role_name: string;
        status: string;
      }>('SELECT id, schema_name, role_name, status FROM platform.tenants WHERE slug = $1', {
        bind: [slug],
        type: QueryTypes.SELECT,
        transaction: null,
      });
      const entry = row && {
        slug,
        tenantId: row.id,
        schema: row.schema_name,
        role: row.role_name,
        status: row.status,
      };
      remember(slug, entry);
      return entry;
    },
  };
}

export { tenantErrors };

export interface RequireTenantOptions {
  /** Called for every refused request (the audit log records them). */
  onRefused?: (req: Request, code: string, detail: string) => Promise<void> | void;
  /** Where a failure of onRefused is logged. */
  logger?: Logger;
}

/**
 * Binds an authenticated request to its tenant. The tenant is the verified token's; the gateway's
 * X-Tenant-ID (stamped from the tenant's host) must name the same tenant, else 403. The tenant
 * must be active. The resolved tenant goes to `res.locals.tenant` for tenantRoute().
 */
export function requireTenant(
  directory: TenantDirectory,
  options: RequireTenantOptions = {},
): RequestHandler {
  return async (req, res, next) => {
    const principal = req.user;
    if (!principal) throw new Error('requireTenant() must come after authenticate()');
    const addressed = req.get('x-tenant-id');
    const refuse = async (error: ReturnType<typeof tenantErrors.TENANT_MISMATCH>) => {
      try {
        await options.onRefused?.(req, error.code, error.message);
      } catch (err) {
        // The refusal stands even when recording it failed: the caller still gets its 403.
        options.logger?.error({ err, code: error.code }, 'cannot record a refused tenant request');
      }
      next(error);
    };
    // The gateway always stamps X-Tenant-ID, so a request without it did not come through the
    // tenant's host and is refused like one that names another tenant.
    if (addressed !== principal.tenant) {
      return refuse(
        tenantErrors.TENANT_MISMATCH(
          addressed === undefined
            ? 'X-Tenant-ID is missing; requests reach tenants only through their host'
            : 'X-Tenant-ID does not name the tenant of the access token',
        ),
      );
    }
    let tenant = await directory.lookup(principal.tenant);
    // A cached entry of another id may be that of a tenant deleted since and created again under
    // the same slug (same schema and role names): the database decides. A token of the deleted
    // tenant then meets the new entry and is refused; one of the new tenant is let in at once.
    if (tenant && tenant.tenantId !== principal.tenantId) {
      tenant = await directory.lookup(principal.tenant, { fresh: true });
    }
    if (!tenant || tenant.tenantId !== principal.tenantId || tenant.status !== 'active') {
      return refuse(tenantErrors.TENANT_UNAVAILABLE(`Tenant ${principal.tenant} is not active`));
    }
    res.locals.tenant = tenant;
    next();
  };
}

/** What a tenant route answers; it is sent only after the transaction has committed. */
export interface Reply {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * A route handler that runs in the request's tenant transaction: the tenant setting, search path
 * and role are set first, every Sequelize query inside uses the transaction, a thrown error rolls
 * it back, and the reply goes out only once the commit succeeded.
 */
export function tenantRoute(
  sequelize: Sequelize,
  handler: (req: Request, res: Response) => Promise<Reply>,
): RequestHandler {
  return async (req, res) => {
    const tenant = res.locals.tenant as TenantEntry | undefined;
    if (!tenant) throw new Error('tenantRoute() needs requireTenant() before it');
    const reply = await withTenantTransaction(sequelize, tenant, () => handler(req, res)).catch(
      (err: unknown) => {
        throw privilegeRefused(err) ? tenantUnavailable(tenant, err) : err;
      },
    );
    for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
    res.status(reply.status ?? 200);
    if (reply.body === undefined) res.end();
    else res.json(reply.body);
  };
}

/**
 * Whether a statement of the request was refused for privilege (42501): the tenant's grants
 * were revoked after its transaction opened, or its isolation policy refused a row because the
 * transaction's tenant id is not the schema's (a cached directory entry of a tenant deleted and
 * created again under the same slug). Either way the tenant addressed is not the active one.
 */
function privilegeRefused(err: unknown): boolean {
  if (err instanceof AppError) return false;
  const e = err as { original?: { code?: unknown }; parent?: { code?: unknown }; code?: unknown };
  return (e?.original?.code ?? e?.parent?.code ?? e?.code) === '42501';
}

function tenantUnavailable(tenant: TenantEntry, cause: unknown): AppError {
  return tenantErrors.TENANT_UNAVAILABLE(`Tenant ${tenant.slug} is not active`, {}, { cause });
}
