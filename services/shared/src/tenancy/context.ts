import type { Sequelize, Transaction } from 'sequelize';
import { enableTransactionContext, namespace } from './cls.js';
import { AppError } from '../http/errors.js';
import { TenancyError, TenancyErrorCode } from './errors.js';

/** Whose data a request touches: taken from the verified token, never from a header alone. */
export interface TenantContext {
  /** The tenant's id in platform.tenants; row-level security compares tenant_id with it. */
  tenantId: string;
  /** The tenant's schema, `tenant_<slug>`; put first on the search path. */
  schema: string;
  /**
   * The tenant's database role (platform.tenants.role_name). When given, the transaction acts
   * as it, so that another tenant's schema is not even readable; recommended.
   */
  role?: string;
}

const TENANT_KEY = 'vextrus.tenant';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TENANT_SCHEMA = /^tenant_[a-z][a-z0-9_]{0,62}$/;
const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

function validate(context: TenantContext): void {
  const problem = !UUID.test(context.tenantId)
    ? 'tenantId is not a uuid'
    : !TENANT_SCHEMA.test(context.schema)
      ? `schema ${JSON.stringify(context.schema)} is not a tenant schema`
      : context.role !== undefined && !ROLE.test(context.role)
        ? `role ${JSON.stringify(context.role)} is not a role name`
        : undefined;
  if (problem) {
    throw new TenancyError(
      TenancyErrorCode.InvalidContext,
      `cannot open a tenant transaction: ${problem}`,
    );
  }
}

/** The tenant of the transaction the caller runs in, if any. */
export function currentTenant(): TenantContext | undefined {
  return namespace.get(TENANT_KEY) as TenantContext | undefined;
}

/**
 * Runs fn in one transaction bound to the tenant: it first sets `app.tenant_id`, the search path
 * and (when given) the tenant role, all transaction-local (set_config(..., true), never a
 * session SET on a pooled connection), so nothing survives the commit or rollback. Every
 * Sequelize query made inside fn, however deep, uses this transaction without passing it.
 * Commits when fn resolves, rolls back when it throws.
 *
 * Inside a transaction of the same tenant, fn joins it; inside another tenant's, it throws.
 */
export async function withTenantTransaction<T>(
  sequelize: Sequelize,
  context: TenantContext,
  fn: (transaction: Transaction) => Promise<T>,
): Promise<T> {
  validate(context);
  enableTransactionContext(sequelize);
  const outer = currentTenant();
  const open = namespace.get('transaction') as Transaction | null | undefined;
  if (outer && open) {
    if (outer.tenantId === context.tenantId && outer.schema === context.schema) return fn(open);
    throw new TenancyError(
      TenancyErrorCode.NestedContext,
      'cannot open a tenant transaction inside the transaction of another tenant',
    );
  }
  return sequelize.transaction(async (transaction) => {
    namespace.set(TENANT_KEY, Object.freeze({ ...context }));
    try {
      await sequelize.query(
        `SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true)` +
          (context.role === undefined ? '' : `, set_config('role', $3, true)`),
        {
          transaction,
          bind: [context.tenantId, `"${context.schema}"`, ...(context.role ? [context.role] : [])],
        },
      );
    } catch (err) {
      // The tenant role was revoked (the tenant is being retained or deleted) while a cached
      // directory entry still called it active: the tenant is unavailable, not a server error.
      if (sqlState(err) === '42501') throw tenantUnavailable(context.schema, err);
      throw err;
    }
    return fn(transaction);
  });
}

function sqlState(err: unknown): string | undefined {
  const e = err as { original?: { code?: string }; parent?: { code?: string }; code?: string };
  return e.original?.code ?? e.parent?.code ?? e.code;
}

function tenantUnavailable(schema: string, cause: unknown): AppError {
  return new AppError(
    'TENANT_UNAVAILABLE',
    { status: 403, title: 'The tenant is not active' },
    `The tenant of ${schema} is not active`,
    {},
    { cause },
  );
}
