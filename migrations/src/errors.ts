/** Stable codes of the errors that the migrations library and CLI report. */
export const MigrationErrorCode = {
  InvalidSlug: 'INVALID_TENANT_SLUG',
  InvalidRoleName: 'INVALID_ROLE_NAME',
  InvalidArguments: 'INVALID_ARGUMENTS',
  Configuration: 'CONFIGURATION_ERROR',
  LockBusy: 'MIGRATION_LOCK_BUSY',
  PlatformNotMigrated: 'PLATFORM_NOT_MIGRATED',
  TenantNotProvisioned: 'TENANT_NOT_PROVISIONED',
  TenantNotActive: 'TENANT_NOT_ACTIVE',
  MigrationFailed: 'MIGRATION_FAILED',
  ProvisioningFailed: 'PROVISIONING_FAILED',
  DeprovisioningFailed: 'DEPROVISIONING_FAILED',
  RolesFailed: 'ROLES_FAILED',
  DriftDetected: 'DRIFT_DETECTED',
} as const;

export type MigrationErrorCode = (typeof MigrationErrorCode)[keyof typeof MigrationErrorCode];

/** An error with a stable code; its message says what was being attempted and why it failed. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';

  constructor(
    readonly code: MigrationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The message of a thrown value, with PostgreSQL's detail and hint when there are some. */
export function describe(err: unknown): string {
  if (err instanceof MigrationError) return err.message;
  if (!(err instanceof Error)) return String(err);
  // Sequelize wraps driver errors in `original`; umzug wraps migration errors in `cause`.
  const source = err as Error & { original?: unknown; cause?: unknown };
  if (source.original instanceof Error) return describe(source.original);
  if (err.name === 'MigrationError' && source.cause instanceof Error) return describe(source.cause);
  const pgError = err as Error & { detail?: string; hint?: string };
  const parts = [err.message];
  if (pgError.detail) parts.push(`(${pgError.detail.replace(/\s+/g, ' ').trim()})`);
  if (pgError.hint) parts.push(`hint: ${pgError.hint}`);
  return parts.join(' ');
}

/** Wraps a failure: `cannot <what>: <why>`, keeping the original as `cause`. */
export function wrap(code: MigrationErrorCode, what: string, err: unknown): MigrationError {
  if (err instanceof MigrationError && err.code === MigrationErrorCode.LockBusy) return err;
  return new MigrationError(code, `cannot ${what}: ${describe(err)}`, { cause: err });
}
