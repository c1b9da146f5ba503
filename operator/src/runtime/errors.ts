/** The message of anything thrown: an Error's message, else the value as text. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The failure of one named step of a reconcile ("schema", "routes", …). The controller logs the
 * step as its own field and retries the key with backoff, as it does any error. The message
 * names the step only: the logger appends the cause's message.
 */
export class StepError extends Error {
  override readonly name = 'StepError';

  constructor(
    readonly step: string,
    cause: unknown,
  ) {
    super(`step ${step} failed`, { cause });
  }
}
