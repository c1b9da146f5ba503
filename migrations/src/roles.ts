import type { Transaction } from 'sequelize';
import type { Database } from './database.js';
import { execute, inTransaction, select } from './database.js';
import { MigrationError, MigrationErrorCode, wrap } from './errors.js';
import { quoteIdent, quoteLiteral, validateRoleName } from './identifiers.js';
import { withAdvisoryLock } from './lock.js';

/** The names of the database roles of the platform; each can be configured. */
export interface RoleNames {
  /** Owns the schemas and tables; only migrations and provisioning act as it. */
  owner: string;
  /** The services log in as it: not superuser, no BYPASSRLS, owner of nothing. */
  app: string;
  /** Alone may delete old audit records. */
  retention: string;
  /** Prefix of the per-tenant NOLOGIN roles that hold the privileges on one tenant schema. */
  tenantPrefix: string;
}

export const DEFAULT_ROLE_NAMES: RoleNames = {
  owner: 'vextrus_owner',
  app: 'vextrus_app',
  retention: 'vextrus_retention',
  tenantPrefix: 'vextrus_tenant_',
};

/** Fills in the defaults and checks every name. */
export function resolveRoleNames(names: Partial<RoleNames> = {}): RoleNames {
  const roles = { ...DEFAULT_ROLE_NAMES, ...names };
  validateRoleName(roles.owner, 'owner');
  validateRoleName(roles.app, 'application');
  validateRoleName(roles.retention, 'retention');
  validateRoleName(`${roles.tenantPrefix}x`, 'tenant prefix');
  // Each role has its own attributes: one name for two would give the application role the
  // owner's, or take the owner's away. And provisioning tenant <slug> makes <prefix><slug> a
  // NOLOGIN role of no privileges: a platform role under the prefix would be made one.
  const platform = [
    ['owner', roles.owner],
    ['application', roles.app],
    ['retention', roles.retention],
  ] as const;
  for (const [what, name] of platform) {
    const same = platform.find(([other, otherName]) => other !== what && otherName === name);
    if (same) {
      throw new MigrationError(
        MigrationErrorCode.InvalidRoleName,
        `the ${what} and ${same[0]} roles are both named ${JSON.stringify(name)}: ` +
          'give each its own name',
      );
    }
    if (name.startsWith(roles.tenantPrefix)) {
      throw new MigrationError(
        MigrationErrorCode.InvalidRoleName,
        `the ${what} role ${JSON.stringify(name)} starts with the tenant role prefix ` +
          `${JSON.stringify(roles.tenantPrefix)}, so a tenant could be given its name: ` +
          'choose a prefix that no platform role starts with',
      );
    }
  }
  return roles;
}

/** The NOLOGIN role that holds the privileges on one tenant's schema. */
export function tenantRoleName(roles: RoleNames, schemaSuffix: string): string {
  return validateRoleName(`${roles.tenantPrefix}${schemaSuffix}`, 'tenant');
}

export interface RolePasswords {
  owner?: string;
  app?: string;
  retention?: string;
}

/**
 * Attributes each role must have, re-applied on every run so that drift is undone. The owner may
 * create roles, so that provisioning can run as it in production; the others can do nothing but
 * log in. None may bypass Row-Level Security.
 */
const LOGIN_ROLE_ATTRIBUTES = {
  owner: 'LOGIN NOSUPERUSER NOCREATEDB CREATEROLE NOREPLICATION NOBYPASSRLS INHERIT',
  app: 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT',
  retention: 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT',
} as const;

/**
 * Creates the owner, application and retention roles, or brings existing ones back to the
 * attributes above; sets the passwords that are given. Run by a superuser or CREATEROLE login.
 * Idempotent; serialised with other runs by an advisory lock.
 */
export async function ensureRoles(db: Database, passwords: RolePasswords = {}): Promise<void> {
  try {
    await withAdvisoryLock(db, 'roles', () =>
      inTransaction(db, async (transaction) => {
        for (const kind of ['owner', 'app', 'retention'] as const) {
          const name = db.roles[kind];
          const [existing] = await select<{ superuser: boolean; me: boolean }>(
            db,
            `SELECT rolsuper AS superuser, rolname = session_user AS me
               FROM pg_roles WHERE rolname = $1`,
            [name],
            transaction,
          );
          // The owner may run this itself (it keeps CREATEROLE); the others would lose it.
          if (existing?.superuser || (existing?.me && kind !== 'owner')) {
            throw new MigrationError(
              MigrationErrorCode.InvalidRoleName,
              `cannot ensure the database roles: the ${kind} role ${name} is ` +
                `${existing.superuser ? 'a superuser' : 'the login running this'}, and would ` +
                'lose its powers; give the platform roles names of their own',
            );
          }
          const password = passwords[kind];
          const clause = password === undefined ? '' : ` PASSWORD ${quoteLiteral(password)}`;
          const verb = existing ? 'ALTER' : 'CREATE';
          const attributes = LOGIN_ROLE_ATTRIBUTES[kind];
          await execute(
            db,
            `${verb} ROLE ${quoteIdent(name)} ${attributes}${clause}`,
            [],
            transaction,
          );
          db.logger.info({ role: name, created: !existing }, 'role ensured');
        }

        const database = quoteIdent(await currentDatabase(db, transaction));
        const { owner, app, retention } = db.roles;
        await execute(
          db,
          `GRANT CONNECT, CREATE ON DATABASE ${database} TO ${quoteIdent(owner)}`,
          [],
          transaction,
        );
        await execute(
          db,
          `GRANT CONNECT ON DATABASE ${database} TO ${quoteIdent(app)}, ${quoteIdent(retention)}`,
          [],
          transaction,
        );
        await ensureOwnerMembership(db, transaction);
      }),
    );
  } catch (err) {
    if (err instanceof MigrationError) throw err;
    throw wrap(MigrationErrorCode.RolesFailed, 'ensure the database roles', err);
  }
}

async function currentDatabase(db: Database, transaction: Transaction): Promise<string> {
  const [row] = await select<{ name: string }>(
    db,
    'SELECT current_database() AS name',
    [],
    transaction,
  );
  return row?.name ?? '';
}

/**
 * Migrations act as the owner with SET ROLE. A superuser may always; a CREATEROLE login that is
 * not the owner itself needs membership in it.
 */
async function ensureOwnerMembership(db: Database, transaction: Transaction): Promise<void> {
  const [me] = await select<{ superuser: boolean; member: boolean }>(
    db,
    `SELECT r.rolsuper AS superuser, pg_has_role(current_user, $1, 'MEMBER') AS member
       FROM pg_roles r WHERE r.rolname = current_user`,
    [db.roles.owner],
    transaction,
  );
  if (me && !me.superuser && !me.member) {
    await execute(db, `GRANT ${quoteIdent(db.roles.owner)} TO CURRENT_USER`, [], transaction);
  }
}
