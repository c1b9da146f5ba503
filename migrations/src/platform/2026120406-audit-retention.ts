import type { MigrationContext } from '../migration.js';
import { quoteIdent } from '../identifiers.js';

/**
 * How long each tenant keeps its audit records (days; set from the Tenant's spec), and what the
 * retention role may read of the registry to enforce it: it runs as a CronJob, tenant by tenant.
 */
export async function up({ sql, roles }: MigrationContext): Promise<void> {
  await sql(`
    ALTER TABLE tenants
      ADD COLUMN audit_retention_days integer NOT NULL DEFAULT 365,
      ADD CONSTRAINT tenants_audit_retention_days_check
        CHECK (audit_retention_days BETWEEN 1 AND 36500);
    GRANT SELECT (id, slug, status, schema_name, audit_retention_days) ON tenants
      TO ${quoteIdent(roles.retention)};
  `);
}

export async function down({ sql, roles }: MigrationContext): Promise<void> {
  await sql(`
    REVOKE SELECT (id, slug, status, schema_name, audit_retention_days) ON tenants
      FROM ${quoteIdent(roles.retention)};
    ALTER TABLE tenants DROP COLUMN audit_retention_days;
  `);
}
