import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * The library's logger when the caller passes none. Logs go to stderr, so that the CLI's stdout
 * carries only its results (status and drift reports as JSON).
 */
export function createLogger(level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'vextrus-migrations', level }, pino.destination(2));
}
