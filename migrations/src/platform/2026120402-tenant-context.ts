import type { MigrationContext } from '../migration.js';

/**
 * The tenant of the current transaction, as the isolation policies of tenant tables read it.
 * A missing or empty `app.tenant_id` gives NULL, which equals no tenant_id: policies fail closed.
 * STABLE (and plain SQL without a SET clause, so the planner can inline it) keeps indexes on
 * tenant_id usable; the value is fixed for the statement.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE FUNCTION current_tenant_id() RETURNS uuid
      LANGUAGE sql STABLE PARALLEL SAFE
      AS $$
        SELECT NULLIF(pg_catalog.current_setting('app.tenant_id', true), '')::pg_catalog.uuid
      $$;
    COMMENT ON FUNCTION current_tenant_id() IS
      'Tenant of the current transaction (app.tenant_id), or NULL when unset: policies fail closed';
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP FUNCTION current_tenant_id()');
}
