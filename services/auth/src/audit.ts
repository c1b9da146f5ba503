import type { Sequelize } from 'sequelize';
import type { Logger, TenantContext } from '@vextrus/shared';

/**
 * The audit events of the auth service, written against the shared audit facility's API
 * (recordAudit inside the tenant transaction, recordAuditSeparately in a transaction of its
 * own). NOTE: the facility has not landed on main yet, so both write a structured log line
 * under the key `audit`; once it lands, these two functions call it and nothing else changes.
 */
export interface AuditEvent {
  action: string;
  outcome: 'success' | 'failure' | 'denied';
  resourceType?: string;
  resourceId?: string;
  changes?: { before?: Record<string, unknown>; after?: Record<string, unknown> };
  actor?: { userId?: string; roles?: readonly string[]; system?: string };
  details?: Record<string, unknown>;
}

export interface Audit {
  /** Records the event in the open tenant transaction (it commits or rolls back with it). */
  record(event: AuditEvent): Promise<void>;
  /** Records the event in its own transaction: for refusals, whose own work rolls back. */
  recordSeparately(tenant: TenantContext, event: AuditEvent): Promise<void>;
}

export function createAudit(_sequelize: Sequelize, logger: Logger): Audit {
  return {
    record(event) {
      logger.info({ audit: event }, 'audit event');
      return Promise.resolve();
    },
    recordSeparately(tenant, event) {
      logger.info({ audit: event, tenantId: tenant.tenantId }, 'audit event');
      return Promise.resolve();
    },
  };
}
