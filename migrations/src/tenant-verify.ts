/**
 * What a tenant's catalog should be, checked without changing it: its names, and verify, which
 * compares the registry and the catalog with what provisioning creates (tenants.ts repairs).
 */
import type { Database } from './database.js';
import { select, inTransaction } from './database.js';
import { wrap, MigrationErrorCode } from './errors.js';
import { quoteIdent, tenantSchema, validateSlug } from './identifiers.js';
import { findTenant, type TenantStatus } from './registry.js';
import { tenantRoleName } from './roles.js';
import { trackStatus, type Track } from './runner.js';
import { MIGRATION_TABLE } from './tenant/conventions.js';
import { tenantMigrations } from './tenant/index.js';
import {
  planRelation,
  planRole,
  planSchema,
  readRelations,
  readRole,
  readSchema,
  relationStateQuery,
  roleStateQuery,
  schemaStateQuery,
  type Access,
  type DriftIssue,
  type RelationState,
  type RoleState,
  type SchemaState,
  type TenantNames,
} from './tenant-state.js';

/** The schema and role names of a tenant; throws a coded error for an invalid slug. */
export function tenantNames(db: Database, slug: string): TenantNames {
  validateSlug(slug);
  const schema = tenantSchema(slug);
  return { slug, schema, role: tenantRoleName(db.roles, schema.slice('tenant_'.length)) };
}

/** The migration track of the tenant's schema. */
export function tenantTrack(names: TenantNames): Track {
  return { kind: 'tenant', schema: names.schema, migrations: tenantMigrations };
}

/** What verify found: the tenant's names and status, and every difference from provisioning. */
export interface DriftReport {
  tenant: string;
  schema: string;
  role: string;
  /** The registry status, or null when the tenant is not registered. */
  status: TenantStatus | null;
  /** The registry's audit retention window, when read along (one-statement reading only). */
  auditRetentionDays?: number;
  clean: boolean;
  issues: DriftIssue[];
}

/** What verify reads: the registry row, the catalog of the tenant's role and schema. */
interface TenantState {
  registered: { id: string; status: TenantStatus; auditRetentionDays?: number } | undefined;
  role: RoleState | undefined;
  /** undefined when the schema does not exist (relations and applied are then empty). */
  schema: SchemaState | undefined;
  relations: RelationState[];
  /** The names in the schema's migration table. */
  applied: string[];
}

/**
 * Reads the whole state in one statement, so that a periodic check of every tenant (the
 * operator's resync) costs one round trip and one snapshot. Its policy expressions must be
 * printed with only pg_catalog on the search path: set_config runs first, as the relations
 * subquery depends on its result. It names the migration table directly, so it fails when the
 * platform, the schema or that table is missing; verify then reads step by step.
 */
async function readAtOnce(db: Database, names: TenantNames): Promise<TenantState> {
  const table = `${quoteIdent(names.schema)}.${quoteIdent(MIGRATION_TABLE)}`;
  const [row] = await select<{
    registered: TenantState['registered'] | null;
    role: RoleState | null;
    schema: SchemaState | null;
    relations: RelationState[];
    applied: string[];
  }>(
    db,
    `SELECT (SELECT row_to_json(t) FROM (SELECT id, status,
                    audit_retention_days AS "auditRetentionDays"
                    FROM platform.tenants WHERE slug = $1) t) AS registered,
            (SELECT row_to_json(r) FROM (${roleStateQuery('$2')}) r) AS role,
            (SELECT row_to_json(s) FROM (${schemaStateQuery('$3')}) s) AS schema,
            (SELECT COALESCE(json_agg(x ORDER BY x.name), '[]')
               FROM (${relationStateQuery('$3')}) x
              WHERE setting.path IS NOT NULL) AS relations,
            ARRAY(SELECT name::text FROM ${table} ORDER BY name) AS applied
       FROM (SELECT set_config('search_path', 'pg_catalog', true) AS path) AS setting`,
    [names.slug, names.role, names.schema],
  );
  if (!row) throw new Error('the state query returned no row');
  return {
    registered: row.registered ?? undefined,
    role: row.role ?? undefined,
    schema: row.schema ?? undefined,
    relations: row.relations,
    applied: row.applied,
  };
}

/** Reads the state query by query; works whatever is missing (a half-provisioned tenant). */
async function readStepByStep(db: Database, names: TenantNames): Promise<TenantState> {
  const tenant = await findTenant(db, names.slug);
  const state = await inTransaction(db, async (transaction) => {
    const role = await readRole(db, names.role, transaction);
    const schema = await readSchema(db, names.schema, transaction);
    const relations = schema ? await readRelations(db, names.schema, transaction) : [];
    return { role, schema, relations };
  });
  const track = state.schema ? await trackStatus(db, tenantTrack(names)) : undefined;
  return {
    registered: tenant ? { id: tenant.id, status: tenant.status } : undefined,
    ...state,
    applied: track ? [...track.executed, ...track.unknown] : [],
  };
}

/** The drift of a tenant's state from what provisioning creates. */
function assess(names: TenantNames, db: Database, state: TenantState): DriftIssue[] {
  const issues: DriftIssue[] = [];
  const issue = (code: string, object: string, detail: string, repairable = true): void => {
    issues.push({ code, object, detail, repairable });
  };
  const tenant = state.registered;
  if (!tenant) issue('NOT_REGISTERED', `tenant ${names.slug}`, 'not in platform.tenants', false);
  else if (!['active', 'suspended', 'retained'].includes(tenant.status)) {
    issue('UNFINISHED', `tenant ${names.slug}`, `status is ${tenant.status}; run it again`, false);
  }
  const access: Access = tenant?.status === 'retained' ? 'revoked' : 'granted';

  if (state.role) issues.push(...planRole(state.role, names, db.roles, access).issues);
  else issue('ROLE_MISSING', `role ${names.role}`, 'the tenant role does not exist');

  if (!state.schema) {
    issue('SCHEMA_MISSING', `schema ${names.schema}`, 'the tenant schema does not exist');
    return issues;
  }
  issues.push(...planSchema(state.schema, names, db.roles).issues);
  if (!state.relations.some((r) => r.name === MIGRATION_TABLE)) {
    issue('MIGRATIONS_MISSING', `schema ${names.schema}`, `no ${MIGRATION_TABLE} table`);
  }
  for (const relation of state.relations) {
    issues.push(...planRelation(relation, names, db.roles, tenant?.id).issues);
  }
  const applied = new Set(state.applied);
  const known = new Set(tenantMigrations.map((m) => m.name));
  const pending = tenantMigrations.map((m) => m.name).filter((name) => !applied.has(name));
  const unknown = state.applied.filter((name) => !known.has(name));
  if (pending.length > 0) issue('MIGRATIONS_PENDING', `schema ${names.schema}`, pending.join(', '));
  if (unknown.length > 0) {
    const detail = `applied but unknown to this release: ${unknown.join(', ')}`;
    issue('MIGRATIONS_UNKNOWN', `schema ${names.schema}`, detail, false);
  }
  return issues;
}

/**
 * Compares the catalog with what provisioning creates; reads only, takes no lock. A provisioned
 * tenant is read in one statement; `how: 'step-by-step'` forces the query-by-query reading that
 * a half-provisioned one falls back to (the tests compare both).
 */
export async function verify(
  db: Database,
  slug: string,
  how: 'at-once' | 'step-by-step' = 'at-once',
): Promise<DriftReport> {
  const names = tenantNames(db, slug);
  try {
    let state: TenantState | undefined;
    if (how === 'at-once') {
      state = await readAtOnce(db, names).catch((err: unknown) => {
        db.logger.debug({ tenant: slug, err }, 'reading the tenant state step by step');
        return undefined;
      });
    }
    state ??= await readStepByStep(db, names);
    const issues = assess(names, db, state);
    return {
      tenant: slug,
      ...names,
      status: state.registered?.status ?? null,
      ...(state.registered?.auditRetentionDays === undefined
        ? {}
        : { auditRetentionDays: state.registered.auditRetentionDays }),
      clean: !issues.length,
      issues,
    };
  } catch (err) {
    throw wrap(MigrationErrorCode.ProvisioningFailed, `verify tenant ${slug}`, err);
  }
}
