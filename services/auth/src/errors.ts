import { AppError, commonErrorKinds, defineErrors, tenantErrors } from '@vextrus/shared';

/** Every error code the auth service answers with: its stable catalogue. */
export const errors = defineErrors({
  ...commonErrorKinds,
  ...tenantErrors.kinds,
  TENANT_REQUIRED: {
    status: 400,
    title: 'X-Tenant-ID must name the tenant (the gateway sets it from the tenant host)',
  },
  INVALID_CREDENTIALS: { status: 401, title: 'The email or the password is not correct' },
  TOO_MANY_ATTEMPTS: {
    status: 429,
    title: 'Too many failed logins; wait for the time in Retry-After before trying again',
  },
  PASSWORD_CHECKS_BUSY: {
    status: 503,
    title: 'Too many passwords are being checked right now; retry after the time in Retry-After',
  },
  INVALID_REFRESH_TOKEN: {
    status: 401,
    title: 'The refresh token is unknown, expired or revoked; log in again',
  },
  INVALID_ONE_TIME_TOKEN: {
    status: 400,
    title: 'The setup or invitation token is unknown, used, revoked or expired; ask for a new one',
  },
  PASSWORD_REJECTED: { status: 400, title: 'The new password is not acceptable' },
  CURRENT_PASSWORD_INCORRECT: { status: 403, title: 'The current password is not correct' },
  EMAIL_TAKEN: { status: 409, title: 'A user with this email already exists in the tenant' },
  USER_NOT_FOUND: { status: 404, title: 'No such user in this tenant' },
  LAST_ADMIN: {
    status: 409,
    title: 'The tenant must keep at least one active administrator',
  },
  NO_PASSWORD_YET: {
    status: 409,
    title: 'The user has not chosen a password yet; send a new invitation instead',
  },
});

/**
 * Whether a tenant transaction was refused because the tenant was retained or deleted after its
 * directory entry (cached for a few seconds) last said it was active.
 */
export function isTenantUnavailable(err: unknown): boolean {
  return err instanceof AppError && err.code === 'TENANT_UNAVAILABLE';
}
