import type { Transaction } from 'sequelize';
import { execute, select, type Database } from '../database.js';
import { quoteIdent } from '../identifiers.js';

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
