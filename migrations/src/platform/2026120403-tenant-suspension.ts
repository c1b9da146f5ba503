import type { MigrationContext } from '../migration.js';

/** A tenant can be suspended (Tenant spec.suspended): the services then refuse its requests. */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
    ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
      CHECK (status IN ('provisioning', 'active', 'suspended', 'retained', 'deleting'));
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql(`
    UPDATE tenants SET status = 'active' WHERE status = 'suspended';
    ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
    ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
      CHECK (status IN ('provisioning', 'active', 'retained', 'deleting'));
  `);
}
