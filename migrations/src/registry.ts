import type { Transaction } from 'sequelize';
import type { Database } from './database.js';
import { select } from './database.js';
import { MigrationError, MigrationErrorCode } from './errors.js';

export type TenantStatus = 'provisioning' | 'active' | 'suspended' | 'retained' | 'deleting';

/** A row of platform.tenants. */
export interface TenantRecord {
  id: string;
  slug: string;
  displayName: string;
  status: TenantStatus;
  schemaName: string;
  roleName: string;
}

const COLUMNS = `id, slug, display_name AS "displayName", status,
  schema_name AS "schemaName", role_name AS "roleName"`;

/** Fails with a clear message when the platform track has not created the registry yet. */
export async function requirePlatform(
  db: Database,
  transaction: Transaction | null = null,
): Promise<void> {
  const [row] = await select<{ found: boolean }>(
    db,
    "SELECT to_regclass('platform.tenants') IS NOT NULL AND " +
      "to_regprocedure('platform.current_tenant_id()') IS NOT NULL AS found",
    [],
    transaction,
  );
  if (!row?.found) {
    throw new MigrationError(
      MigrationErrorCode.PlatformNotMigrated,
      'the platform migrations have not run (platform.tenants is missing): run `platform up` first',
    );
  }
}

export async function findTenant(
  db: Database,
  slug: string,
  transaction: Transaction | null = null,
): Promise<TenantRecord | undefined> {
  await requirePlatform(db, transaction);
  const [row] = await select<TenantRecord>(
    db,
    `SELECT ${COLUMNS} FROM platform.tenants WHERE slug = $1`,
    [slug],
    transaction,
  );
  return row;
}

/** Registered tenants, by slug; all of them when no status is given. */
export async function listTenants(
  db: Database,
  statuses?: readonly TenantStatus[],
): Promise<TenantRecord[]> {
  await requirePlatform(db);
  return statuses
    ? select<TenantRecord>(
        db,
        `SELECT ${COLUMNS} FROM platform.tenants WHERE status = ANY($1) ORDER BY slug`,
        [statuses],
      )
    : select<TenantRecord>(db, `SELECT ${COLUMNS} FROM platform.tenants ORDER BY slug`);
}
