/**
 * How a tenant table is written. Provisioning does the rest for every table of the schema:
 * it enables and forces Row-Level Security, creates the isolation policy and grants the tenant
 * role its privileges, in one transaction per table (never before RLS is on).
 *
 * A tenant table must:
 * - have the column below (`tenant_id uuid NOT NULL`, defaulting to the transaction's tenant);
 * - lead every primary key, unique constraint and index with tenant_id;
 * - name its constraints and indexes explicitly, so that `down` and `up` give the same catalog;
 * - be a view only WITH (security_invoker = true).
 */
export const TENANT_ID_COLUMN = 'tenant_id uuid NOT NULL DEFAULT platform.current_tenant_id()';

/** The isolation policy that every tenant table gets. */
export const ISOLATION_POLICY = 'tenant_isolation';
export const ISOLATION_EXPRESSION = '(tenant_id = platform.current_tenant_id())';

/** The table in each tenant schema that records the applied tenant migrations. */
export const MIGRATION_TABLE = 'schema_migrations';

/**
 * Tables of audit records: the tenant role may read and append, only the retention role may
 * delete. Listed here by table name.
 */
export const AUDIT_TABLES: ReadonlySet<string> = new Set<string>(['audit_events', 'audit_chain']);
