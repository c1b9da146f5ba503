/** Thrown by the configuration loader; names every missing or invalid variable at once. */
export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIGURATION';

  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}
