import { commonErrorKinds, defineErrors, tenantErrors } from '@vextrus/shared';

/** Every error code the organization service answers with: its stable catalogue. */
export const errors = defineErrors({
  ...commonErrorKinds,
  ...tenantErrors.kinds,
  CODE_TAKEN: {
    status: 409,
    title: 'Another record already uses this code; choose another code',
  },
  DEPENDENTS_EXIST: {
    status: 409,
    title: 'Other records depend on this one; delete or move them first',
  },
  PARENT_ARCHIVED: {
    status: 409,
    title: 'The parent record is archived; restore it first',
  },
  ALREADY_ARCHIVED: { status: 409, title: 'The record is already archived' },
  ARCHIVED: { status: 409, title: 'The record is archived; restore it before changing it' },
  NOT_ARCHIVED: { status: 409, title: 'The record is not archived' },
  DIVISION_CYCLE: {
    status: 409,
    title: 'The move would put a division beneath itself; choose another parent',
  },
  DIVISION_TOO_DEEP: {
    status: 409,
    title: 'The division tree would become deeper than allowed; choose a higher parent',
  },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: 'The Idempotency-Key was already used for a different request; use a new key',
  },
});

export type ServiceError = ReturnType<typeof errors.NOT_FOUND>;
