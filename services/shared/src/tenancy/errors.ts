import { defineErrors } from '../http/errors.js';

/** Stable codes of the tenancy module's errors. */
export const TenancyErrorCode = {
  /** The tenant context is malformed (not a uuid, not a tenant schema, bad role name). */
  InvalidContext: 'TENANT_CONTEXT_INVALID',
  /** A tenant transaction was opened inside another tenant's transaction. */
  NestedContext: 'TENANT_CONTEXT_NESTED',
  /** Sequelize already has a CLS namespace that is not this module's. */
  ClsConflict: 'TENANT_CLS_CONFLICT',
  /**
   * The transaction was rolled back instead of committed: a statement inside it failed and its
   * error was caught and ignored, so PostgreSQL answered the COMMIT with ROLLBACK.
   */
  RolledBack: 'TENANT_TRANSACTION_ROLLED_BACK',
  /** The login role could bypass row-level security; the service must not start. */
  UnsafeLoginRole: 'UNSAFE_DATABASE_ROLE',
} as const;

export type TenancyErrorCode = (typeof TenancyErrorCode)[keyof typeof TenancyErrorCode];

/** An error of the tenancy module; never shown to clients as is (it renders as a 500). */
export class TenancyError extends Error {
  override readonly name = 'TenancyError';

  constructor(
    readonly code: TenancyErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The problems a request bound to a tenant can meet: answered 403 with these codes. */
export const tenantErrors = defineErrors({
  TENANT_MISMATCH: {
    status: 403,
    title: 'The token belongs to another tenant than the one addressed',
  },
  TENANT_UNAVAILABLE: { status: 403, title: 'The tenant is not active' },
});

/**
 * Whether a SQLSTATE says the database session ended under the request: 57P01 to 57P05
 * (pg_terminate_backend, a shutdown, a crash, an idle-session timeout) or a connection exception
 * (class 08). The pool replaces the connection, so asking again may work.
 */
export function sessionEnded(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith('08') || /^57P0[1-5]$/.test(code));
}
