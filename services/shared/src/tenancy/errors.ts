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
