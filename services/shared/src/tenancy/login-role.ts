import { QueryTypes, type Sequelize } from 'sequelize';
import { TenancyError, TenancyErrorCode } from './errors.js';

interface LoginRole {
  name: string;
  superuser: boolean;
  bypassrls: boolean;
  owned: string[];
}

/**
 * Refuses a login role that could step around row-level security: a superuser, a role with
 * BYPASSRLS, or one that owns (or may act as the owner of) a table in a tenant schema, since
 * owners can disable RLS. The services call it at start-up, before serving anything.
 */
export async function assertSafeLoginRole(sequelize: Sequelize): Promise<void> {
  let role: LoginRole | undefined;
  try {
    [role] = await sequelize.query<LoginRole>(
      `SELECT r.rolname AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
              ARRAY(SELECT (n.nspname || '.' || c.relname)::text
                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname LIKE 'tenant\\_%' AND c.relkind IN ('r', 'p', 'v', 'm')
                       AND pg_has_role(r.oid, c.relowner, 'MEMBER')
                     ORDER BY 1 LIMIT 5) AS owned
         FROM pg_roles r WHERE r.rolname = current_user`,
      { type: QueryTypes.SELECT, transaction: null },
    );
  } catch (err) {
    throw new TenancyError(
      TenancyErrorCode.UnsafeLoginRole,
      'cannot check the database login role: the query failed',
      { cause: err },
    );
  }
  const reasons = !role
    ? ['it was not found in pg_roles']
    : [
        ...(role.superuser ? ['it is a superuser'] : []),
        ...(role.bypassrls ? ['it has BYPASSRLS'] : []),
        ...(role.owned.length > 0 ? [`it owns tenant tables (${role.owned.join(', ')})`] : []),
      ];
  if (reasons.length > 0) {
    throw new TenancyError(
      TenancyErrorCode.UnsafeLoginRole,
      `refusing to start: the database login role ${role?.name ?? ''} could bypass row-level ` +
        `security: ${reasons.join('; ')}. Log in as the application role (vextrus_app).`,
    );
  }
}
