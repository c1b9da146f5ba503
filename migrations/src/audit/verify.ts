import { verifyAuditChain, type ChainReport } from '@vextrus/shared';
import type { Database } from '../database.js';
import { describe, MigrationError, MigrationErrorCode } from '../errors.js';
import { auditTenant } from './registry.js';

/**
 * Walks the tenant's audit chain from its retention checkpoint and reports the first broken or
 * missing link, or records kept behind the checkpoint. Runs as the connection's login, which
 * needs SELECT on the audit tables (the owner or the retention role).
 */
export async function verifyTenantAudit(
  db: Database,
  slug: string,
  options: { batchSize?: number } = {},
): Promise<ChainReport & { tenant: string }> {
  const tenant = await auditTenant(db, slug);
  try {
    const context = { tenantId: tenant.id, schema: tenant.schema };
    return { tenant: slug, ...(await verifyAuditChain(db.sequelize, context, options)) };
  } catch (err) {
    const cause = err instanceof Error && err.cause !== undefined ? err.cause : err;
    throw new MigrationError(
      MigrationErrorCode.MigrationFailed,
      `cannot verify the audit chain of ${slug}: ${describe(cause)}`,
      { cause: err },
    );
  }
}
