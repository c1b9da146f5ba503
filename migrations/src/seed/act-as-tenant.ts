import type { Transaction } from 'sequelize';
import { execute, inTransaction, select, type Database } from '../database.js';
import { MigrationError, MigrationErrorCode, wrap } from '../errors.js';
import { quoteIdent, validateSlug } from '../identifiers.js';
import { findTenant } from '../registry.js';

/**
 * Binds a seeding transaction to one tenant: its tenant id and schema, and its role when this
 * login may act as it (a superuser must, or it would bypass row-level security). The owner role
 * that provisioning runs as in production may not, but forced row-level security binds it too.
 */
export async function actAsTenant(
  db: Database,
  transaction: Transaction,
  tenant: { id: string; schemaName: string; roleName: string },
): Promise<void> {
  const [member] = await select<{ can: boolean }>(
    db,
    "SELECT pg_has_role(current_user, $1, 'SET') AS can",
    [tenant.roleName],
    transaction,
  );
  if (member?.can) {
    await execute(db, `SET LOCAL ROLE ${quoteIdent(tenant.roleName)}`, [], transaction);
  }
  await execute(
    db,
    "SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true)",
    [tenant.id, `${quoteIdent(tenant.schemaName)}, pg_catalog`],
    transaction,
  );
}

/** A statement of a seeding transaction: the rows it returns. */
export type SeedQuery = <T extends object>(sql: string, bind?: unknown[]) => Promise<T[]>;

/**
 * Runs `seed` in one transaction bound to the active tenant `slug` (actAsTenant), once the
 * transaction holds the tenant's advisory lock for `lock`: concurrent runs of one seeding take
 * turns, the second seeing what the first committed. A tenant that is not registered or not
 * active is refused with its own code; any other failure becomes PROVISIONING_FAILED, saying
 * what could not be done (`what`, for example "seed the administrator of acme").
 */
export async function seedTenant<T>(
  db: Database,
  slug: string,
  lock: string,
  what: string,
  seed: (q: SeedQuery) => Promise<T>,
): Promise<T> {
  validateSlug(slug);
  try {
    const tenant = await findTenant(db, slug);
    if (!tenant) {
      throw new MigrationError(
        MigrationErrorCode.TenantNotProvisioned,
        `tenant ${slug} is not registered`,
      );
    }
    if (tenant.status !== 'active') {
      throw new MigrationError(
        MigrationErrorCode.TenantNotActive,
        `tenant ${slug} is ${tenant.status}, not active`,
      );
    }
    return await inTransaction(db, async (transaction) => {
      await actAsTenant(db, transaction, tenant);
      const q: SeedQuery = (sql, bind = []) => select(db, sql, bind, transaction);
      await q('SELECT pg_advisory_xact_lock(hashtext($1))', [`${lock}:${slug}`]);
      return seed(q);
    });
  } catch (err) {
    if (err instanceof MigrationError) throw err;
    throw wrap(MigrationErrorCode.ProvisioningFailed, what, err);
  }
}
