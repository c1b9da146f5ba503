/** Stable codes of the audit module's errors. */
export const AuditErrorCode = {
  /** recordAudit() was called outside of a tenant transaction. */
  NoTransaction: 'AUDIT_NO_TRANSACTION',
  /** The event is malformed (action not lowercase dotted, unknown outcome); a programming error. */
  InvalidEvent: 'AUDIT_EVENT_INVALID',
  /** The tenant context given for a separate record or a read is malformed. */
  InvalidTenant: 'AUDIT_TENANT_INVALID',
  /** Writing the record failed; the transaction it belongs to rolls back. */
  WriteFailed: 'AUDIT_WRITE_FAILED',
  /** Reading the records or the chain (verification, queries, export) failed. */
  ReadFailed: 'AUDIT_READ_FAILED',
  /** Chaining the tenant's pending records failed; they stay pending, committed. */
  SealFailed: 'AUDIT_SEAL_FAILED',
} as const;

export type AuditErrorCode = (typeof AuditErrorCode)[keyof typeof AuditErrorCode];

/** An error of the audit facility; never shown to clients as is (it renders as a 500). */
export class AuditError extends Error {
  override readonly name = 'AuditError';

  constructor(
    readonly code: AuditErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
