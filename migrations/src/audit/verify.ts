import { sealAudit, verifyAuditChain, type ChainReport } from '@vextrus/shared';
import { select, type Database } from '../database.js';
import { describe, MigrationError, MigrationErrorCode } from '../errors.js';
import { auditTenant } from './registry.js';

/**
 * Walks the tenant's audit chain from its retention checkpoint and reports the first broken or
 * missing link, or records kept behind the checkpoint, after sealing the records still pending
 * (as the services' reads do). Runs as the connection's login, which needs SELECT on the audit
 * tables (the owner or the retention role).
 */
export async function verifyTenantAudit(
  db: Database,
  slug: string,
  options: { batchSize?: number } = {},
): Promise<ChainReport & { tenant: string }> {
  const tenant = await auditTenant(db, slug);
  try {
    const context = { tenantId: tenant.id, schema: tenant.schema };
    await sealAudit(db.sequelize, context);
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

/**
 * Chains the audit records pending in a tenant's schema, found by its schema name, and says how
 * many (tests that read the log directly call it, as the services do before they read).
 */
export async function sealSchemaAudit(db: Database, schema: string): Promise<number> {
  const [tenant] = await select<{ id: string }>(
    db,
    'SELECT id FROM platform.tenants WHERE schema_name = $1',
    [schema],
  );
  if (!tenant) throw new Error(`no tenant has the schema ${schema}`);
  return sealAudit(db.sequelize, { tenantId: tenant.id, schema });
}
