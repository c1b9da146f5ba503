import type { Sequelize } from 'sequelize';
import {
  recordAudit,
  recordAuditSeparately,
  type AuditEvent,
  type Logger,
  type TenantContext,
} from '@vextrus/shared';

export type { AuditEvent };

/** The auth service's way into the shared audit facility (one place, so tests can see it). */
export interface Audit {
  /** Records the event in the open tenant transaction (it commits or rolls back with it). */
  record(event: AuditEvent): Promise<void>;
  /** Records the event in its own transaction: for refusals, whose own work rolls back. */
  recordSeparately(tenant: TenantContext, event: AuditEvent): Promise<void>;
}

export function createAudit(sequelize: Sequelize, logger: Logger): Audit {
  return {
    async record(event) {
      await recordAudit(event);
      logger.debug({ action: event.action, outcome: event.outcome }, 'audit event recorded');
    },
    async recordSeparately(tenant, event) {
      await recordAuditSeparately(sequelize, tenant, event);
      logger.debug({ action: event.action, outcome: event.outcome }, 'audit event recorded');
    },
  };
}
