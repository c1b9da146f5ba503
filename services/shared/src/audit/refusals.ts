import type { ErrorRequestHandler, Request } from 'express';
import type { Logger } from 'pino';
import type { Sequelize } from 'sequelize';
import type { TenantDirectory, TenantEntry } from '../auth/tenant-scope.js';
import { AppError } from '../http/errors.js';
import type { AuditEvent } from './event.js';
import { recordAuditSeparately } from './record.js';

export interface RefusalAuditOptions {
  sequelize: Sequelize;
  directory: TenantDirectory;
  /** Where a failure to record is logged; the refusal itself still goes out. */
  logger?: Logger;
}

/** The callback of requireTenant and requireRole: `{ onRefused }`. */
export type RefusalRecorder = (req: Request, code: string, detail: string) => Promise<void>;

/** A tenant whose schema is live, so a record can go into it (a suspended one too). */
const RECORDABLE_STATUSES = new Set(['active', 'suspended']);

/**
 * The tenant a refusal is recorded in: the request's resolved tenant, else the verified
 * token's. Never the tenant a request merely names in X-Tenant-ID, so that a caller cannot write
 * into another tenant's log.
 */
async function refusalTenant(
  req: Request,
  directory: TenantDirectory,
): Promise<TenantEntry | undefined> {
  const resolved = req.res?.locals.tenant as TenantEntry | undefined;
  if (resolved) return resolved;
  const principal = req.user;
  if (!principal) return undefined;
  const entry = await directory.lookup(principal.tenant);
  if (!entry || entry.tenantId !== principal.tenantId) return undefined;
  return RECORDABLE_STATUSES.has(entry.status) ? entry : undefined;
}

function refusalEvent(req: Request, status: number, code: string, detail: string): AuditEvent {
  const denied = status === 401 || status === 403;
  const addressed = req.get('x-tenant-id');
  return {
    action: denied ? 'access.denied' : 'request.rejected',
    outcome: denied ? 'denied' : 'failure',
    details: {
      code,
      status,
      detail: detail.slice(0, 500),
      method: req.method,
      // The path without the query string: queries may carry values that do not belong here.
      path: `${req.baseUrl}${req.path}`.slice(0, 500),
      ...(addressed !== undefined && addressed !== req.user?.tenant ? { addressed } : {}),
    },
  };
}

/** Records one refusal once per request; only authenticated requests have a tenant to go to. */
async function recordRefusal(
  options: RefusalAuditOptions,
  req: Request,
  status: number,
  code: string,
  detail: string,
): Promise<void> {
  const locals = req.res?.locals;
  if (locals?.auditRefusalRecorded) return;
  const tenant = await refusalTenant(req, options.directory);
  if (!tenant) return;
  await recordAuditSeparately(options.sequelize, tenant, refusalEvent(req, status, code, detail));
  if (locals) locals.auditRefusalRecorded = true;
}

/**
 * The `onRefused` callback for requireTenant and requireRole: records the refused attempt as
 * `access.denied` (outcome denied) in a transaction of its own, in the caller's tenant.
 */
export function auditRefusals(options: RefusalAuditOptions): RefusalRecorder {
  return (req, code, detail) => recordRefusal(options, req, 403, code, detail);
}

/** Client errors worth an audit record: refusals and invalid input, not a missing route. */
const AUDITED_STATUSES = new Set([400, 403, 422]);

/**
 * Error middleware for tenant routes (mount it after them, before the service's error
 * handler): records the 400/403/422 problems of authenticated requests (validation failures,
 * refusals) as `request.rejected` or `access.denied`, then passes the error on unchanged. A
 * failure to record is logged and never changes the answer.
 */
export function auditClientErrors(options: RefusalAuditOptions): ErrorRequestHandler {
  return async (err: unknown, req, _res, next) => {
    if (err instanceof AppError && AUDITED_STATUSES.has(err.status) && req.user) {
      try {
        await recordRefusal(options, req, err.status, err.code, err.message);
      } catch (failure) {
        options.logger?.error({ err: failure, code: err.code }, 'cannot record a refused request');
      }
    }
    next(err);
  };
}
