import { verifyAuditChain, type ChainReport } from '@vextrus/shared';
import type { Database } from '../database.js';
import { auditTenant } from './registry.js';

/**
 * Walks the tenant's audit chain from its retention checkpoint and reports the first broken or
 * missing link. Runs as the connection's login, which needs SELECT on the audit tables (the
 * owner or the retention role).
 */
export async function verifyTenantAudit(
  db: Database,
  slug: string,
  options: { batchSize?: number } = {},
): Promise<ChainReport & { tenant: string }> {
  const tenant = await auditTenant(db, slug);
  const report = await verifyAuditChain(
    db.sequelize,
    { tenantId: tenant.id, schema: tenant.schema },
    options,
  );
  return { tenant: slug, ...report };
}
