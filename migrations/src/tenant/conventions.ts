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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The condition of the isolation policy of every table in the schema of tenant `tenantId`, as
 * PostgreSQL prints it: a row must belong to the transaction's tenant and to the schema's own.
 * The second half keeps a transaction of tenant B from storing or reading rows in tenant A's
 * schema even when it acts as A's role (the application role may act as every tenant role) or
 * as no tenant role at all.
 */
export function isolationExpression(tenantId: string): string {
  if (!UUID.test(tenantId)) throw new Error(`tenant id ${JSON.stringify(tenantId)} is not a uuid`);
  return `((tenant_id = platform.current_tenant_id()) AND (tenant_id = '${tenantId}'::uuid))`;
}

/** The table in each tenant schema that records the applied tenant migrations. */
export const MIGRATION_TABLE = 'schema_migrations';

/**
 * Tables of audit records: the tenant role may read and append, only the retention role may
 * delete. Listed here by table name.
 */
export const AUDIT_TABLES: ReadonlySet<string> = new Set<string>(['audit_events', 'audit_chain']);

/**
 * Relations no role but the owner may touch: audit records not yet chained, which only the
 * owner's definer functions audit_append and audit_seal write (2026120426-audit-sealing).
 */
export const OWNER_ONLY_RELATIONS: ReadonlySet<string> = new Set<string>([
  'audit_pending',
  'audit_pending_position_seq',
]);

/**
 * The function through which the tenant role stores audit records (2026120426-audit-sealing).
 * It runs with the owner's rights, so only the tenant role may execute it; provisioning checks
 * and repairs that, as it does the privileges on tables.
 */
export const AUDIT_APPEND_SIGNATURE =
  'audit_append(timestamptz, text, text[], text, text, text, text, text, text, text, text, ' +
  'jsonb, jsonb)';
