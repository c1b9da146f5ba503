import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from './database.js';
import { execute, inTransaction, select } from './database.js';
import { MigrationError, MigrationErrorCode, describe, wrap } from './errors.js';
import { quoteIdent } from './identifiers.js';
import { withAdvisoryLock } from './lock.js';
import { findTenant, listTenants, requirePlatform, type TenantStatus } from './registry.js';
import {
  actAsOwner,
  ensureMigrationTable,
  runTrack,
  trackStatus,
  type RunOptions,
  type TrackStatus,
} from './runner.js';
import { MIGRATION_TABLE } from './tenant/conventions.js';
import {
  applyFixes,
  planRelation,
  planRole,
  planSchema,
  readRelations,
  readRole,
  readSchema,
  type Access,
  type TenantNames,
} from './tenant-state.js';
import { tenantNames, tenantTrack, verify, type DriftReport } from './tenant-verify.js';

/** The steps of provisioning, in order; each is idempotent and commits on its own. */
export const PROVISION_STEPS = [
  'registry',
  'role',
  'schema',
  'migrations',
  'tables',
  'access',
  'activate',
] as const;
export type ProvisionStep = (typeof PROVISION_STEPS)[number];

export interface ProvisionOptions {
  /** Shown in the registry; the slug when absent. Kept as is when the tenant exists. */
  displayName?: string;
  /** Called after each step has committed; a test seam for interruptions. */
  afterStep?: (step: ProvisionStep) => void | Promise<void>;
  /**
   * false: skip the tenant migrations (the operator runs them in a Job) and leave the tenant
   * unactivated; provision again once they ran to isolate the new tables and activate.
   */
  migrations?: boolean;
  /** false: a tenant that is not active yet stays so (a suspended tenant is never activated). */
  activate?: boolean;
}

export interface ProvisionResult {
  tenantId: string;
  slug: string;
  schema: string;
  role: string;
  /** Tenant migrations applied by this run. */
  applied: string[];
}

/** Registers the tenant (status provisioning) unless it is; returns its id. */
async function ensureRegistry(
  db: Database,
  names: TenantNames,
  displayName: string,
): Promise<string> {
  return inTransaction(db, async (transaction) => {
    await requirePlatform(db, transaction);
    await actAsOwner(db, transaction, 'platform');
    await execute(
      db,
      `INSERT INTO platform.tenants (slug, display_name, schema_name, role_name)
       VALUES ($1, $2, $3, $4) ON CONFLICT (slug) DO NOTHING`,
      [names.slug, displayName, names.schema, names.role],
      transaction,
    );
    const tenant = await findTenant(db, names.slug, transaction);
    if (!tenant) throw new Error('the registry row vanished while provisioning');
    if (tenant.schemaName !== names.schema || tenant.roleName !== names.role) {
      throw new Error(
        `the registry names schema ${tenant.schemaName} and role ${tenant.roleName}, ` +
          `not ${names.schema} and ${names.role}: were the role names reconfigured?`,
      );
    }
    return tenant.id;
  });
}

/** PostgreSQL's refusal when two sessions change one catalog row at once (GRANT, ALTER ROLE). */
const CATALOG_RACE = /tuple concurrently (updated|deleted)/;

/**
 * Runs a provisioning or repair pass again when it lost a catalog race. Every tenant role is
 * granted USAGE on the platform schema, one catalog row, so two tenants reconciled at once can
 * change it together; and a killed run releases its lock at once (the locking session is idle)
 * while a statement it sent on another session may still be finishing. Every step reads the
 * catalog and changes only what differs, so running the pass again is safe; after five tries
 * the failure stands.
 */
async function retryingCatalogRaces<T>(
  db: Database,
  slug: string,
  fn: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 5 || !CATALOG_RACE.test(describe(err))) throw err;
      db.logger.warn({ tenant: slug, attempt, err: describe(err) }, 'catalog race, trying again');
      await sleep(100 * attempt);
    }
  }
}

/** Creates the NOLOGIN tenant role and puts its attributes and memberships right. */
async function ensureRole(db: Database, names: TenantNames, access: Access): Promise<void> {
  await inTransaction(db, async (transaction) => {
    let state = await readRole(db, names.role, transaction);
    if (!state) {
      await execute(db, `CREATE ROLE ${quoteIdent(names.role)} NOLOGIN`, [], transaction);
      state = await readRole(db, names.role, transaction);
    }
    if (!state) throw new Error(`role ${names.role} was not created`);
    const plan = planRole(state, names, db.roles, access);
    await applyFixes(db, transaction, plan.fixes);
  });
}

/** Creates the schema as the owner, with its migration table, and sets its privileges. */
async function ensureSchema(db: Database, names: TenantNames): Promise<void> {
  await inTransaction(db, async (transaction) => {
    await actAsOwner(db, transaction, names.schema);
    await execute(db, `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(names.schema)}`, [], transaction);
    await ensureMigrationTable(db, transaction, names.schema);
  });
  await inTransaction(db, async (transaction) => {
    const state = await readSchema(db, names.schema, transaction);
    if (!state) throw new Error(`schema ${names.schema} was not created`);
    await applyFixes(db, transaction, planSchema(state, names, db.roles).fixes);
  });
}

/**
 * Enforces row-level security, the isolation policy and the privileges on every relation of
 * the schema: one transaction per relation, so a table is never granted before it is isolated.
 */
async function ensureTables(db: Database, names: TenantNames, tenantId: string): Promise<void> {
  const relations = await inTransaction(db, (transaction) =>
    readRelations(db, names.schema, transaction),
  );
  for (const relation of relations) {
    const plan = planRelation(relation, names, db.roles, tenantId);
    if (plan.fixes.length === 0) continue;
    await inTransaction(db, (transaction) => applyFixes(db, transaction, plan.fixes));
    db.logger.info(
      { tenant: names.slug, relation: relation.name, fixed: plan.issues.map((i) => i.code) },
      'relation isolated',
    );
  }
}

async function setStatus(db: Database, names: TenantNames, status: TenantStatus): Promise<void> {
  await inTransaction(db, async (transaction) => {
    await actAsOwner(db, transaction, 'platform');
    await execute(
      db,
      'UPDATE platform.tenants SET status = $2, updated_at = now() WHERE slug = $1',
      [names.slug, status],
      transaction,
    );
  });
}

/** The steps shared by provision and repair, up to and including access. */
async function reconcile(
  db: Database,
  names: TenantNames,
  tenantId: string,
  access: Access,
  afterStep: (step: ProvisionStep) => Promise<void>,
  migrations = true,
): Promise<string[]> {
  await ensureRole(db, names, 'unchanged');
  await afterStep('role');

  await ensureSchema(db, names);
  await afterStep('schema');

  const applied = migrations ? await runTrack(db, tenantTrack(names), { direction: 'up' }) : [];
  await afterStep('migrations');

  await ensureTables(db, names, tenantId);
  await afterStep('tables');

  // Access last: the application role reaches the schema only once every table is isolated.
  await ensureRole(db, names, access);
  await afterStep('access');
  return applied;
}

/**
 * Provisions a tenant: registry entry, role, schema, migrations, isolation of every table and
 * the application role's access. Idempotent: run it again after any failure or kill. On a
 * retained tenant it restores access; a tenant being deleted it refuses.
 */
export async function provision(
  db: Database,
  slug: string,
  options: ProvisionOptions = {},
): Promise<ProvisionResult> {
  const names = tenantNames(db, slug);
  const log = db.logger.child({ tenant: slug });
  const afterStep = async (step: ProvisionStep): Promise<void> => {
    log.debug({ step }, 'step done');
    await options.afterStep?.(step);
  };
  try {
    return await retryingCatalogRaces(db, slug, () =>
      withAdvisoryLock(db, `tenant:${slug}`, async () => {
        const started = Date.now();
        if ((await findTenant(db, slug))?.status === 'deleting') {
          // Its data may be half gone: bringing it back would pass a damaged tenant off as new.
          throw new MigrationError(
            MigrationErrorCode.TenantNotActive,
            `tenant ${slug} is being deleted: run deprovision --delete again to finish, ` +
              'then provision it anew',
          );
        }
        const tenantId = await ensureRegistry(db, names, options.displayName ?? slug);
        await afterStep('registry');

        const applied = await reconcile(
          db,
          names,
          tenantId,
          'granted',
          afterStep,
          options.migrations,
        );

        const current = await findTenant(db, slug);
        const activate =
          options.migrations !== false &&
          options.activate !== false &&
          current?.status !== 'suspended';
        if (activate) await setStatus(db, names, 'active');
        await afterStep('activate');
        log.info({ applied, ms: Date.now() - started }, 'tenant provisioned');
        return { tenantId, ...names, applied };
      }),
    );
  } catch (err) {
    throw wrap(MigrationErrorCode.ProvisioningFailed, `provision tenant ${slug}`, err);
  }
}

/**
 * Brings a provisioned tenant back to what provisioning creates, keeping its status (a retained
 * tenant stays without access). Returns the drift report after the repair.
 */
export async function repair(db: Database, slug: string): Promise<DriftReport> {
  const names = tenantNames(db, slug);
  try {
    await retryingCatalogRaces(db, slug, () =>
      withAdvisoryLock(db, `tenant:${slug}`, async () => {
        const tenant = await findTenant(db, slug);
        if (!tenant) {
          throw new MigrationError(
            MigrationErrorCode.TenantNotProvisioned,
            `tenant ${slug} is not provisioned: run provision`,
          );
        }
        if (!['active', 'suspended', 'retained'].includes(tenant.status)) {
          const again = tenant.status === 'deleting' ? 'deprovision --delete' : 'provision';
          throw new MigrationError(
            MigrationErrorCode.TenantNotActive,
            `tenant ${slug} is ${tenant.status}: run ${again} again`,
          );
        }
        const access = tenant.status === 'retained' ? 'revoked' : 'granted';
        await reconcile(db, names, tenant.id, access, () => Promise.resolve());
        db.logger.info({ tenant: slug }, 'tenant repaired');
      }),
    );
  } catch (err) {
    throw wrap(MigrationErrorCode.ProvisioningFailed, `repair tenant ${slug}`, err);
  }
  return verify(db, slug);
}

export type DeprovisionMode = 'retain' | 'delete';

/**
 * Retain: revokes the application role's access and keeps schema, data and role.
 * Delete: reverts every tenant migration, drops the migration table, the schema (which must then
 * be empty: nothing that provisioning did not create is dropped) and the role, and removes the
 * registry entry. Either can be run again after a failure.
 */
export async function deprovision(
  db: Database,
  slug: string,
  mode: DeprovisionMode,
): Promise<void> {
  const names = tenantNames(db, slug);
  try {
    await withAdvisoryLock(db, `tenant:${slug}`, async () => {
      const tenant = await findTenant(db, slug);
      if (mode === 'retain') {
        if (!tenant) {
          throw new MigrationError(
            MigrationErrorCode.TenantNotProvisioned,
            `tenant ${slug} is not provisioned`,
          );
        }
        await setStatus(db, names, 'retained');
        await ensureRole(db, names, 'revoked');
      } else {
        if (tenant) await setStatus(db, names, 'deleting');
        await deleteTenant(db, names);
      }
      db.logger.info({ tenant: slug, mode }, 'tenant deprovisioned');
    });
  } catch (err) {
    throw wrap(MigrationErrorCode.DeprovisioningFailed, `deprovision tenant ${slug}`, err);
  }
}

async function deleteTenant(db: Database, names: TenantNames): Promise<void> {
  const role = await inTransaction(db, (t) => readRole(db, names.role, t));
  if (role) await ensureRole(db, names, 'revoked');

  const schema = await inTransaction(db, (t) => readSchema(db, names.schema, t));
  if (schema) {
    await runTrack(db, tenantTrack(names), { direction: 'down', to: 0 });
    await inTransaction(db, async (transaction) => {
      await actAsOwner(db, transaction, names.schema);
      const table = `${quoteIdent(names.schema)}.${quoteIdent(MIGRATION_TABLE)}`;
      await execute(db, `DROP TABLE IF EXISTS ${table}`, [], transaction);
      // Schema-qualified names in the message below.
      await execute(db, "SELECT set_config('search_path', 'pg_catalog', true)", [], transaction);
      const left = await select<{ object: string }>(
        db,
        `SELECT pg_describe_object(classid, objid, 0) AS object FROM pg_depend
          WHERE refclassid = 'pg_namespace'::regclass AND deptype = 'n'
            AND refobjid = (SELECT oid FROM pg_namespace WHERE nspname = $1)
          ORDER BY 1`,
        [names.schema],
        transaction,
      );
      if (left.length > 0) {
        const objects = left.map((o) => o.object).join(', ');
        throw new Error(
          `schema ${names.schema} still holds objects that provisioning did not create ` +
            `(${objects}): drop or move them, then run deprovision --delete again`,
        );
      }
      await execute(db, `DROP SCHEMA ${quoteIdent(names.schema)}`, [], transaction);
    });
  }

  if (role) {
    await inTransaction(db, async (transaction) => {
      await actAsOwner(db, transaction, 'platform');
      await execute(
        db,
        `REVOKE USAGE ON SCHEMA platform FROM ${quoteIdent(names.role)}`,
        [],
        transaction,
      );
      await execute(db, 'RESET ROLE', [], transaction);
      await execute(db, `DROP ROLE ${quoteIdent(names.role)}`, [], transaction);
    });
  }

  await inTransaction(db, async (transaction) => {
    await actAsOwner(db, transaction, 'platform');
    await execute(db, 'DELETE FROM platform.tenants WHERE slug = $1', [names.slug], transaction);
  });
}

/** Applies (or reverts) tenant migrations of one provisioned tenant, then isolates new tables. */
export async function migrateTenant(
  db: Database,
  slug: string,
  options: RunOptions = { direction: 'up' },
): Promise<string[]> {
  const names = tenantNames(db, slug);
  const verb = options.direction === 'up' ? 'apply' : 'revert';
  try {
    return await withAdvisoryLock(db, `tenant:${slug}`, async () => {
      const tenant = await findTenant(db, slug);
      const schema = await inTransaction(db, (t) => readSchema(db, names.schema, t));
      if (!tenant || !schema) {
        throw new MigrationError(
          MigrationErrorCode.TenantNotProvisioned,
          `tenant ${slug} is not provisioned: run provision`,
        );
      }
      const done = await runTrack(db, tenantTrack(names), options);
      if (options.direction === 'up') await ensureTables(db, names, tenant.id);
      db.logger.info({ tenant: slug, direction: options.direction, done }, 'tenant migrated');
      return done;
    });
  } catch (err) {
    throw wrap(MigrationErrorCode.MigrationFailed, `${verb} migrations of tenant ${slug}`, err);
  }
}

/** Applied and pending migrations of one tenant. */
export async function tenantStatus(db: Database, slug: string): Promise<TrackStatus> {
  const names = tenantNames(db, slug);
  try {
    return await trackStatus(db, tenantTrack(names));
  } catch (err) {
    throw wrap(MigrationErrorCode.MigrationFailed, `read the status of tenant ${slug}`, err);
  }
}

export interface MigrateAllResult {
  migrated: { slug: string; applied: string[] }[];
  failed: { slug: string; error: string }[];
}

/**
 * Migrates every active tenant, `concurrency` at a time. One tenant's failure does not stop the
 * others; the result lists them all.
 */
export async function migrateAllTenants(
  db: Database,
  options: { concurrency?: number } = {},
): Promise<MigrateAllResult> {
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
  const tenants = await listTenants(db, ['active']).catch((err: unknown) => {
    throw wrap(MigrationErrorCode.MigrationFailed, 'list the tenants to migrate', err);
  });
  const result: MigrateAllResult = { migrated: [], failed: [] };
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let tenant = tenants[next++]; tenant; tenant = tenants[next++]) {
      try {
        const applied = await migrateTenant(db, tenant.slug);
        result.migrated.push({ slug: tenant.slug, applied });
      } catch (err) {
        result.failed.push({ slug: tenant.slug, error: describe(err) });
        db.logger.error({ tenant: tenant.slug, err }, 'tenant migration failed');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tenants.length) }, worker));
  return result;
}

/**
 * Suspends or resumes an active tenant: the services refuse a suspended tenant's requests and
 * logins (they serve only active tenants); schema, data and access stay as they are.
 */
export async function setSuspended(db: Database, slug: string, suspended: boolean): Promise<void> {
  const from = suspended ? 'active' : 'suspended';
  const to = suspended ? 'suspended' : 'active';
  await execute(
    db,
    'UPDATE platform.tenants SET status = $2, updated_at = now() WHERE slug = $1 AND status = $3',
    [slug, to, from],
  );
}
