import type { Request } from 'express';
import {
  diffFields,
  recordAuditSeparately,
  type AuditEvent,
  type Logger,
  type TenantDirectory,
  type TenantEntry,
} from '@vextrus/shared';
import type { Sequelize } from 'sequelize';

/**
 * The audit records of this service, through the shared audit facility: every mutation calls
 * recordAudit inside its tenant transaction (so the record commits or rolls back with it), and
 * refused attempts are recorded here in a transaction of their own.
 */
export { recordAudit } from '@vextrus/shared';

/** Bookkeeping fields that every change touches; they would only add noise to each record. */
const BOOKKEEPING = new Set(['version', 'createdAt', 'updatedAt']);

function withoutBookkeeping(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(row).filter(([name]) => !BOOKKEEPING.has(name)));
}

/** The changed business fields between two snapshots of a record, for AuditEvent.changes. */
export function changesOf(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): AuditEvent['changes'] {
  return diffFields(withoutBookkeeping(before), withoutBookkeeping(after));
}

export interface RefusalRecorder {
  /** Records that the caller of `req` was refused with `code`; never throws. */
  (req: Request, code: string, detail: string): Promise<void>;
}

/**
 * Records refused attempts (wrong tenant, inactive tenant, missing role) in the audit log of the
 * tenant named by the caller's token, when that tenant exists and is active.
 */
export function refusalRecorder(
  sequelize: Sequelize,
  directory: TenantDirectory,
  logger: Logger,
): RefusalRecorder {
  return async (req, code, detail) => {
    const principal = req.user;
    if (!principal) return;
    try {
      const tenant: TenantEntry | undefined = await directory.lookup(principal.tenant);
      if (!tenant || tenant.tenantId !== principal.tenantId || tenant.status !== 'active') return;
      await recordAuditSeparately(sequelize, tenant, {
        action: 'organization.access.denied',
        outcome: 'denied',
        details: { code, detail, method: req.method, path: req.path },
      });
    } catch (err) {
      logger.error({ err, code }, 'cannot record a refused request');
    }
  };
}
