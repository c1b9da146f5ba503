import type { Transaction } from 'sequelize';
import type { Database } from './database.js';
import { execute, select } from './database.js';
import { quoteIdent } from './identifiers.js';
import type { RoleNames } from './roles.js';
import {
  AUDIT_APPEND_SIGNATURE,
  AUDIT_TABLES,
  OWNER_ONLY_RELATIONS,
  isolationExpression,
  ISOLATION_POLICY,
  MIGRATION_TABLE,
} from './tenant/conventions.js';

/** The names provisioning derives from a slug. */
export interface TenantNames {
  slug: string;
  schema: string;
  role: string;
}

/**
 * Whether the application role may reach the tenant (active) or not (retained); `unchanged`
 * leaves its membership as it is (the first steps of provisioning, before tables are isolated).
 */
export type Access = 'granted' | 'revoked' | 'unchanged';

/** One difference between the catalog and what provisioning creates. */
export interface DriftIssue {
  /** A stable code, such as RLS_NOT_FORCED or UNEXPECTED_PRIVILEGE. */
  code: string;
  /** The object concerned, schema-qualified: `table tenant_acme.organizations`. */
  object: string;
  detail: string;
  /** Whether repair() can fix it; others need a person (or a migration). */
  repairable: boolean;
}

/** A statement that fixes drift, run as the login (session) or, after SET ROLE, as the owner. */
export interface Fix {
  as: 'session' | 'owner';
  sql: string;
}

/** Issues found on one object and the statements that would fix the repairable ones. */
export interface Plan {
  issues: DriftIssue[];
  fixes: Fix[];
}

interface Grant {
  grantee: string;
  privilege: string;
  grantable: boolean;
}

interface Policy {
  name: string;
  permissive: boolean;
  command: string;
  roles: string[];
  using: string | null;
  withCheck: string | null;
}

export interface RelationState {
  name: string;
  kind: 'r' | 'p' | 'v' | 'm' | 'S' | 'f';
  owner: string;
  rls: boolean;
  forceRls: boolean;
  securityInvoker: boolean;
  /** null when there is no tenant_id column. */
  tenantColumn: { notNull: boolean; type: string } | null;
  acl: Grant[];
  policies: Policy[];
}

export interface SchemaState {
  owner: string;
  acl: Grant[];
  /**
   * Who may execute audit_append when it is the owner's definer function
   * (2026120426-audit-sealing), its default ACL written out; null before that migration.
   */
  appendAcl: Grant[] | null;
}

export interface RoleState {
  attributes: Record<string, boolean>;
  /** Roles that may act as the tenant role (inherit or SET), excluding admin-only links. */
  members: string[];
  memberOf: string[];
  platformUsage: boolean;
}

const KIND_KEYWORD: Record<RelationState['kind'], string> = {
  r: 'TABLE',
  p: 'TABLE',
  v: 'VIEW',
  m: 'MATERIALIZED VIEW',
  S: 'SEQUENCE',
  f: 'FOREIGN TABLE',
};

const KIND_NAME: Record<RelationState['kind'], string> = {
  r: 'table',
  p: 'partitioned table',
  v: 'view',
  m: 'materialized view',
  S: 'sequence',
  f: 'foreign table',
};

const GRANTEE = `CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END`;

/** The catalog queries below print expressions as if only pg_catalog were on the path. */
async function catalogPath(db: Database, transaction: Transaction): Promise<void> {
  await execute(db, "SELECT set_config('search_path', 'pg_catalog', true)", [], transaction);
}

/** The query of a schema's owner and ACL, its name given as `param` ($1, $2, …). */
export function schemaStateQuery(param: string): string {
  const grants = `json_build_object('grantee', ${GRANTEE},
                        'privilege', a.privilege_type, 'grantable', a.is_grantable)`;
  return `SELECT pg_get_userbyid(n.nspowner) AS owner,
            COALESCE((SELECT json_agg(${grants})
                        FROM aclexplode(n.nspacl) a), '[]') AS acl,
            (SELECT COALESCE((SELECT json_agg(${grants})
                                FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a),
                             '[]')
               FROM pg_proc p
              WHERE p.pronamespace = n.oid AND p.proname = 'audit_append' AND p.prosecdef
              LIMIT 1) AS "appendAcl"
       FROM pg_namespace n WHERE n.nspname = ${param}`;
}

/** The query of a role's attributes and memberships, its name given as `param`. */
export function roleStateQuery(param: string): string {
  return `SELECT json_build_object('login', r.rolcanlogin, 'superuser', r.rolsuper,
              'bypassrls', r.rolbypassrls, 'createrole', r.rolcreaterole,
              'createdb', r.rolcreatedb, 'replication', r.rolreplication) AS attributes,
            ARRAY(SELECT pg_get_userbyid(m.member)::text FROM pg_auth_members m
                   WHERE m.roleid = r.oid AND (m.inherit_option OR m.set_option)
                   ORDER BY 1) AS members,
            ARRAY(SELECT pg_get_userbyid(m.roleid)::text FROM pg_auth_members m
                   WHERE m.member = r.oid ORDER BY 1) AS "memberOf",
            has_schema_privilege(r.oid, 'platform', 'USAGE') AS "platformUsage"
       FROM pg_roles r WHERE r.rolname = ${param}`;
}

/**
 * The query of every relation of a schema (its name given as `param`), ordered by name. Its
 * policy expressions are printed as the search path shows them: run it with only pg_catalog
 * on the path, as what they are compared with is printed that way.
 *
 * pg_class has no index that starts with the schema, so a join on relnamespace reads the whole
 * of pg_class, which grows by about 80 rows with every tenant. The relations are found instead
 * through the dependencies on the schema in pg_depend, whose index starts with the referenced
 * object: PostgreSQL records one for every relation it creates in a schema (TOAST tables and
 * the relations of composite types aside, which are not read here) and moves it along with
 * ALTER ... SET SCHEMA, so a relation that provisioning did not create is found as well. The
 * oids are then looked up one by one through pg_class's unique index on oid, and relnamespace
 * is checked again. migrations/test/tenant-state.test.ts compares the rows with those of the
 * join on the schema name.
 */
export function relationStateQuery(param: string): string {
  return `SELECT c.relname AS name, c.relkind AS kind, pg_get_userbyid(c.relowner) AS owner,
            c.relrowsecurity AS rls, c.relforcerowsecurity AS "forceRls",
            EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) o
                     WHERE o.option_name = 'security_invoker'
                       AND lower(o.option_value) IN ('true', 'on', '1', 'yes'))
              AS "securityInvoker",
            (SELECT json_build_object('notNull', t.attnotnull,
                                      'type', format_type(t.atttypid, NULL))
               FROM pg_attribute t
              WHERE t.attrelid = c.oid AND t.attname = 'tenant_id' AND NOT t.attisdropped)
              AS "tenantColumn",
            COALESCE((SELECT json_agg(json_build_object('grantee', ${GRANTEE},
                        'privilege', a.privilege_type, 'grantable', a.is_grantable))
                        FROM aclexplode(c.relacl) a), '[]') AS acl,
            COALESCE((SELECT json_agg(json_build_object('name', p.polname,
                        'permissive', p.polpermissive, 'command', p.polcmd,
                        'roles', ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC'
                                              ELSE pg_get_userbyid(r) END
                                         FROM unnest(p.polroles) r),
                        'using', pg_get_expr(p.polqual, p.polrelid),
                        'withCheck', pg_get_expr(p.polwithcheck, p.polrelid)) ORDER BY p.polname)
                        FROM pg_policy p WHERE p.polrelid = c.oid), '[]') AS policies
       FROM pg_class c
      WHERE c.oid = ANY (ARRAY(
              SELECT d.objid FROM pg_depend d
               WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass
                 AND d.refobjid = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = ${param})
                 AND d.refobjsubid = 0
                 AND d.classid = 'pg_catalog.pg_class'::regclass))
        AND c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = ${param})
        AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      ORDER BY c.relname`;
}

export async function readSchema(
  db: Database,
  schema: string,
  transaction: Transaction,
): Promise<SchemaState | undefined> {
  await catalogPath(db, transaction);
  const [row] = await select<SchemaState>(db, schemaStateQuery('$1'), [schema], transaction);
  return row;
}

export async function readRole(
  db: Database,
  role: string,
  transaction: Transaction,
): Promise<RoleState | undefined> {
  const [row] = await select<RoleState>(db, roleStateQuery('$1'), [role], transaction);
  return row;
}

export async function readRelations(
  db: Database,
  schema: string,
  transaction: Transaction,
): Promise<RelationState[]> {
  await catalogPath(db, transaction);
  return select<RelationState>(db, relationStateQuery('$1'), [schema], transaction);
}

function grantee(name: string): string {
  return name === 'PUBLIC' ? 'PUBLIC' : quoteIdent(name);
}

/**
 * Compares an ACL with the expected privileges (the owner's own entries aside) and plans the
 * REVOKEs and GRANTs, made as the owner, that bring it back.
 */
function planAcl(
  acl: Grant[],
  expected: Record<string, readonly string[]>,
  owner: string,
  object: string,
  target: string,
): Plan {
  const plan: Plan = { issues: [], fixes: [] };
  const have = new Set(acl.map((g) => `${g.grantee}\u0000${g.privilege}`));
  for (const grant of acl) {
    if (grant.grantee === owner) continue;
    const wanted = expected[grant.grantee]?.includes(grant.privilege) ?? false;
    if (!wanted) {
      plan.issues.push({
        code: 'UNEXPECTED_PRIVILEGE',
        object,
        detail: `${grant.grantee} has ${grant.privilege}, which provisioning does not grant`,
        repairable: true,
      });
      plan.fixes.push({
        as: 'owner',
        sql: `REVOKE ${grant.privilege} ON ${target} FROM ${grantee(grant.grantee)} CASCADE`,
      });
    } else if (grant.grantable) {
      plan.issues.push({
        code: 'UNEXPECTED_PRIVILEGE',
        object,
        detail: `${grant.grantee} may grant ${grant.privilege} to others`,
        repairable: true,
      });
      const from = grantee(grant.grantee);
      const sql = `REVOKE GRANT OPTION FOR ${grant.privilege} ON ${target} FROM ${from} CASCADE`;
      plan.fixes.push({ as: 'owner', sql });
    }
  }
  for (const [role, privileges] of Object.entries(expected)) {
    const missing = privileges.filter((p) => !have.has(`${role}\u0000${p}`));
    if (missing.length === 0) continue;
    plan.issues.push({
      code: 'MISSING_PRIVILEGE',
      object,
      detail: `${role} lacks ${missing.join(', ')}`,
      repairable: true,
    });
    plan.fixes.push({
      as: 'owner',
      sql: `GRANT ${missing.join(', ')} ON ${target} TO ${grantee(role)}`,
    });
  }
  return plan;
}

function merge(...plans: Plan[]): Plan {
  return {
    issues: plans.flatMap((p) => p.issues),
    fixes: plans.flatMap((p) => p.fixes),
  };
}

/**
 * Privileges the tenant schema grants: the tenant role and the retention role may use it. Only
 * the tenant role may execute audit_append, which stores records with the owner's rights.
 */
export function planSchema(state: SchemaState, names: TenantNames, roles: RoleNames): Plan {
  const object = `schema ${names.schema}`;
  const target = `SCHEMA ${quoteIdent(names.schema)}`;
  const plan: Plan = { issues: [], fixes: [] };
  if (state.owner !== roles.owner) {
    plan.issues.push({
      code: 'WRONG_OWNER',
      object,
      detail: `owned by ${state.owner} instead of ${roles.owner}`,
      repairable: true,
    });
    plan.fixes.push({ as: 'session', sql: `ALTER ${target} OWNER TO ${quoteIdent(roles.owner)}` });
  }
  const expected = { [names.role]: ['USAGE'], [roles.retention]: ['USAGE'] };
  const append = state.appendAcl
    ? planAcl(
        state.appendAcl,
        { [names.role]: ['EXECUTE'] },
        roles.owner,
        `function ${names.schema}.audit_append`,
        `FUNCTION ${quoteIdent(names.schema)}.${AUDIT_APPEND_SIGNATURE}`,
      )
    : { issues: [], fixes: [] };
  return merge(plan, planAcl(state.acl, expected, roles.owner, object, target), append);
}

const ROLE_ATTRIBUTES = [
  'login',
  'superuser',
  'bypassrls',
  'createrole',
  'createdb',
  'replication',
];

/** The tenant role: NOLOGIN, no special attributes, a member of nothing, used by app only. */
export function planRole(
  state: RoleState,
  names: TenantNames,
  roles: RoleNames,
  access: Access,
): Plan {
  const object = `role ${names.role}`;
  const role = quoteIdent(names.role);
  const plan: Plan = { issues: [], fixes: [] };
  const wrong = ROLE_ATTRIBUTES.filter((attribute) => state.attributes[attribute]);
  if (wrong.length > 0) {
    plan.issues.push({
      code: 'ROLE_ATTRIBUTES',
      object,
      detail: `has ${wrong.join(', ')}`,
      repairable: true,
    });
    const attributes = ROLE_ATTRIBUTES.map((a) => `NO${a.toUpperCase()}`).join(' ');
    plan.fixes.push({ as: 'session', sql: `ALTER ROLE ${role} ${attributes}` });
  }
  for (const other of state.memberOf) {
    plan.issues.push({
      code: 'UNEXPECTED_MEMBERSHIP',
      object,
      detail: `is a member of ${other}`,
      repairable: true,
    });
    plan.fixes.push({ as: 'session', sql: `REVOKE ${quoteIdent(other)} FROM ${role}` });
  }
  for (const member of state.members) {
    if (member === roles.app && access !== 'revoked') continue;
    plan.issues.push({
      code: 'UNEXPECTED_MEMBERSHIP',
      object,
      detail: `${member} may act as ${names.role}`,
      repairable: true,
    });
    plan.fixes.push({ as: 'session', sql: `REVOKE ${role} FROM ${quoteIdent(member)}` });
  }
  if (access === 'granted' && !state.members.includes(roles.app)) {
    plan.issues.push({
      code: 'ACCESS_NOT_GRANTED',
      object,
      detail: `is not granted to ${roles.app}`,
      repairable: true,
    });
    plan.fixes.push({ as: 'session', sql: `GRANT ${role} TO ${quoteIdent(roles.app)}` });
  }
  if (!state.platformUsage) {
    plan.issues.push({
      code: 'MISSING_PRIVILEGE',
      object: 'schema platform',
      detail: `${names.role} lacks USAGE (the isolation policy calls platform functions)`,
      repairable: true,
    });
    plan.fixes.push({ as: 'owner', sql: `GRANT USAGE ON SCHEMA platform TO ${role}` });
  }
  return plan;
}

function expectedRelationAcl(
  relation: RelationState,
  names: TenantNames,
  roles: RoleNames,
): Record<string, readonly string[]> {
  if (relation.name === MIGRATION_TABLE || OWNER_ONLY_RELATIONS.has(relation.name)) return {};
  switch (relation.kind) {
    case 'r':
    case 'p':
      return AUDIT_TABLES.has(relation.name)
        ? { [names.role]: ['SELECT', 'INSERT'], [roles.retention]: ['SELECT', 'DELETE'] }
        : { [names.role]: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] };
    case 'v':
      return { [names.role]: ['SELECT'] };
    case 'S':
      return { [names.role]: ['USAGE'] };
    default:
      return {};
  }
}

/**
 * Row-level security and the isolation policy of one table. Without the tenant's id (a tenant
 * missing from the registry, which verify reports apart), the policy's condition is not
 * checked, and a missing policy is reported without a fix.
 */
function planIsolation(
  relation: RelationState,
  object: string,
  target: string,
  tenantId: string | undefined,
): Plan {
  const plan: Plan = { issues: [], fixes: [] };
  const issue = (code: string, detail: string, repairable = true): void => {
    plan.issues.push({ code, object, detail, repairable });
  };
  if (relation.tenantColumn === null) {
    issue('TENANT_COLUMN_MISSING', 'has no tenant_id column; it cannot be isolated', false);
    return plan;
  }
  if (!relation.tenantColumn.notNull || relation.tenantColumn.type !== 'uuid') {
    issue('TENANT_COLUMN_INVALID', 'tenant_id must be uuid NOT NULL', false);
  }
  if (!relation.rls) {
    issue('RLS_NOT_ENABLED', 'row-level security is disabled');
    plan.fixes.push({ as: 'owner', sql: `ALTER ${target} ENABLE ROW LEVEL SECURITY` });
  }
  if (!relation.forceRls) {
    issue('RLS_NOT_FORCED', 'row-level security does not apply to the owner');
    plan.fixes.push({ as: 'owner', sql: `ALTER ${target} FORCE ROW LEVEL SECURITY` });
  }
  const expression = tenantId === undefined ? undefined : isolationExpression(tenantId);
  const create: Fix[] =
    expression === undefined
      ? []
      : [
          {
            as: 'owner',
            sql:
              `CREATE POLICY ${quoteIdent(ISOLATION_POLICY)} ON ${target.replace(/^TABLE /, '')} ` +
              `AS PERMISSIVE FOR ALL TO PUBLIC USING ${expression} WITH CHECK ${expression}`,
          },
        ];
  const drop = (name: string): Fix => ({
    as: 'owner',
    sql: `DROP POLICY ${quoteIdent(name)} ON ${target.replace(/^TABLE /, '')}`,
  });
  const policy = relation.policies.find((p) => p.name === ISOLATION_POLICY);
  if (!policy) {
    issue('POLICY_MISSING', `the ${ISOLATION_POLICY} policy is missing`);
    plan.fixes.push(...create);
  } else if (
    !policy.permissive ||
    policy.command !== '*' ||
    policy.roles.join(',') !== 'PUBLIC' ||
    (expression !== undefined && (policy.using !== expression || policy.withCheck !== expression))
  ) {
    const expected = expression ?? 'the tenant’s condition';
    issue('POLICY_CHANGED', `the ${ISOLATION_POLICY} policy differs from ${expected}`);
    plan.fixes.push(drop(policy.name), ...create);
  }
  // A second permissive policy would widen access (policies are OR-ed); restrictive ones narrow.
  for (const other of relation.policies) {
    if (other.name === ISOLATION_POLICY || !other.permissive) continue;
    issue('UNEXPECTED_POLICY', `the permissive policy ${other.name} widens access`);
    plan.fixes.push(drop(other.name));
  }
  return plan;
}

/**
 * Everything provisioning requires of one relation of the tenant schema; `tenantId` is the
 * tenant's id in the registry (undefined when it is missing there).
 */
export function planRelation(
  relation: RelationState,
  names: TenantNames,
  roles: RoleNames,
  tenantId: string | undefined,
): Plan {
  const object = `${KIND_NAME[relation.kind]} ${names.schema}.${relation.name}`;
  const qualified = `${quoteIdent(names.schema)}.${quoteIdent(relation.name)}`;
  const target = `${KIND_KEYWORD[relation.kind]} ${qualified}`;
  const plan: Plan = { issues: [], fixes: [] };
  if (relation.owner !== roles.owner) {
    plan.issues.push({
      code: 'WRONG_OWNER',
      object,
      detail: `owned by ${relation.owner} instead of ${roles.owner}`,
      repairable: true,
    });
    plan.fixes.push({ as: 'session', sql: `ALTER ${target} OWNER TO ${quoteIdent(roles.owner)}` });
  }
  const isTable = relation.kind === 'r' || relation.kind === 'p';
  if (isTable && relation.name !== MIGRATION_TABLE) {
    const isolation = planIsolation(relation, object, target, tenantId);
    plan.issues.push(...isolation.issues);
    plan.fixes.push(...isolation.fixes);
  }
  if (relation.kind === 'v' && !relation.securityInvoker) {
    plan.issues.push({
      code: 'VIEW_NOT_SECURITY_INVOKER',
      object,
      detail: 'the view runs with its owner’s rights, bypassing row-level security',
      repairable: true,
    });
    plan.fixes.push({ as: 'owner', sql: `ALTER ${target} SET (security_invoker = true)` });
  }
  if (relation.kind === 'm' || relation.kind === 'f') {
    plan.issues.push({
      code: 'UNSUPPORTED_RELATION',
      object,
      detail: `a ${KIND_NAME[relation.kind]} cannot be isolated by row-level security`,
      repairable: false,
    });
  }
  const expected = expectedRelationAcl(relation, names, roles);
  return merge(plan, planAcl(relation.acl, expected, roles.owner, object, target));
}

/**
 * Runs fixes in one transaction: those of the session first, then the owner's after SET ROLE,
 * in order. Grants therefore never land before row-level security in the same plan.
 */
export async function applyFixes(
  db: Database,
  transaction: Transaction,
  fixes: readonly Fix[],
): Promise<void> {
  for (const fix of fixes.filter((f) => f.as === 'session')) {
    await execute(db, fix.sql, [], transaction);
  }
  const owner = fixes.filter((f) => f.as === 'owner');
  if (owner.length === 0) return;
  await execute(db, `SET LOCAL ROLE ${quoteIdent(db.roles.owner)}`, [], transaction);
  for (const fix of owner) await execute(db, fix.sql, [], transaction);
}
