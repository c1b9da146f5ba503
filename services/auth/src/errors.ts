import { commonErrorKinds, defineErrors } from '@vextrus/shared';

/** Every error code the auth service answers with: its stable catalogue. */
export const errors = defineErrors({
  ...commonErrorKinds,
});
