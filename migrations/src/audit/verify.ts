import {
  verifyAuditChain,
  type ChainProblem,
  type ChainProblemCode,
  type ChainReport,
} from '@vextrus/shared';
import { execute, inTransaction, select, type Database } from '../database.js';
import { describe, MigrationError, MigrationErrorCode } from '../errors.js';
import { auditTenant } from './registry.js';

/**
 * What the CLI adds to the chain's problems: records are kept at or below the retention
 * checkpoint, which says they were removed, so the walk from the checkpoint never checked them
 * (the checkpoint was moved over them, or they were put back).
 */
export type TenantChainProblemCode = ChainProblemCode | 'RECORDS_BEHIND_CHECKPOINT';

export interface TenantChainReport extends Omit<ChainReport, 'problem'> {
  tenant: string;
  problem?: Omit<ChainProblem, 'code'> & { code: TenantChainProblemCode };
}

/**
 * Walks the tenant's audit chain from its retention checkpoint and reports the first broken or
 * missing link, or records kept behind the checkpoint. Runs as the connection's login, which
 * needs SELECT on the audit tables (the owner or the retention role).
 */
export async function verifyTenantAudit(
  db: Database,
  slug: string,
  options: { batchSize?: number } = {},
): Promise<TenantChainReport> {
  const tenant = await auditTenant(db, slug);
  const context = { tenantId: tenant.id, schema: tenant.schema };
  try {
    const report = await verifyAuditChain(db.sequelize, context, options);
    if (!report.valid || report.checkpoint.sequence === 0) return { tenant: slug, ...report };
    // Retention removes records and moves the checkpoint in one transaction, and records are
    // never added below the head: whatever snapshot this reads, none may sit at or below the
    // checkpoint the walk started from.
    const [behind] = await inTransaction(db, async (transaction) => {
      await execute(
        db,
        `SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true)`,
        [tenant.id, `"${tenant.schema}"`],
        transaction,
      );
      return select<{ sequence: string; id: string }>(
        db,
        `SELECT sequence, id FROM audit_events
          WHERE tenant_id = platform.current_tenant_id() AND sequence <= $1
          ORDER BY sequence LIMIT 1`,
        [report.checkpoint.sequence],
        transaction,
      );
    });
    if (!behind) return { tenant: slug, ...report };
    const sequence = Number(behind.sequence);
    return {
      tenant: slug,
      ...report,
      valid: false,
      problem: {
        code: 'RECORDS_BEHIND_CHECKPOINT',
        sequence,
        id: behind.id,
        detail:
          `record ${sequence} is still kept, but the retention checkpoint ` +
          `(${report.checkpoint.sequence}) says it was removed: it was never verified`,
      },
    };
  } catch (err) {
    const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
    throw new MigrationError(
      MigrationErrorCode.MigrationFailed,
      `cannot verify the audit chain of ${slug}: ${describe(cause)}`,
      { cause: err },
    );
  }
}
