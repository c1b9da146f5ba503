import { pino } from 'pino';
import { createLogger as createProcessLogger, type Logger } from '@vextrus/shared';

export type { Logger } from '@vextrus/shared';

/**
 * The library's logger when the caller passes none: the platform's one logger (JSON lines,
 * secrets redacted, ISO times), writing to stderr, so that the CLI's stdout carries only its
 * results (status and drift reports as JSON).
 */
export function createLogger(level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return createProcessLogger({ service: 'migrations', level, destination: pino.destination(2) });
}
