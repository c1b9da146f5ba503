import { Transaction, type Sequelize } from 'sequelize';
import type { TenantContext } from '../tenancy/context.js';
import { tenantErrors } from '../tenancy/errors.js';
import { AuditError, AuditErrorCode } from './errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TENANT_SCHEMA = /^tenant_[a-z][a-z0-9_]{0,62}$/;
const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

/** The checks of withTenantTransaction (the schema is quoted into SQL text below). */
function validateTenantContext(tenant: TenantContext): void {
  if (
    !UUID.test(tenant.tenantId) ||
    !TENANT_SCHEMA.test(tenant.schema) ||
    (tenant.role !== undefined && !ROLE.test(tenant.role))
  ) {
    throw new AuditError(
      AuditErrorCode.InvalidTenant,
      `cannot open an audit transaction: tenant ${JSON.stringify(tenant.schema)} is malformed`,
    );
  }
}

export interface TenantTransactionOptions {
  /** A consistent snapshot for long reads (verify, export). */
  snapshot?: boolean;
  readOnly?: boolean;
  lockTimeoutMs?: number;
}

/**
 * An unmanaged transaction bound to the tenant like withTenantTransaction binds one (tenant
 * setting, search path, tenant role, all transaction-local), but never joined to the caller's
 * CLS transaction: every query must pass it explicitly. The caller commits or rolls back.
 */
export async function openTenantTransaction(
  sequelize: Sequelize,
  tenant: TenantContext,
  options: TenantTransactionOptions = {},
): Promise<Transaction> {
  validateTenantContext(tenant);
  const transaction = await sequelize.transaction({
    isolationLevel: options.snapshot
      ? Transaction.ISOLATION_LEVELS.REPEATABLE_READ
      : Transaction.ISOLATION_LEVELS.READ_COMMITTED,
    readOnly: options.readOnly,
  });
  try {
    // Without lockTimeoutMs, the session's lock_timeout applies (DATABASE_LOCK_TIMEOUT_MS).
    const values: Record<string, string> = {
      'app.tenant_id': tenant.tenantId,
      search_path: `"${tenant.schema}"`,
      ...(options.lockTimeoutMs === undefined
        ? {}
        : { lock_timeout: `${options.lockTimeoutMs}ms` }),
      ...(tenant.role === undefined ? {} : { role: tenant.role }),
    };
    const names = Object.keys(values);
    const settings = names.map((name, i) => `set_config('${name}', $${i + 1}, true)`);
    await sequelize.query(`SELECT ${settings.join(', ')}`, {
      transaction,
      bind: names.map((name) => values[name]),
    });
  } catch (err) {
    await transaction.rollback().catch(() => undefined);
    // The tenant role was revoked (the tenant is being retained or deleted) while a cached
    // directory entry still called it active, as withTenantTransaction says: 42501, the grant
    // was revoked; 22023, the role itself is gone.
    const code = (err as { parent?: { code?: unknown } }).parent?.code;
    if (tenant.role !== undefined && (code === '42501' || code === '22023')) {
      throw tenantErrors.TENANT_UNAVAILABLE(
        `The tenant of ${tenant.schema} is not active`,
        {},
        { cause: err },
      );
    }
    throw err;
  }
  return transaction;
}
