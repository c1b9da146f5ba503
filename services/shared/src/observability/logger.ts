import { pino, type Logger, type DestinationStream } from 'pino';
import { currentRequestContext } from './context.js';

export type { Logger } from 'pino';

/** Paths whose values never reach a log line, wherever they appear in a logged object. */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'newPassword',
  '*.newPassword',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'refreshToken',
  '*.refreshToken',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers.cookie',
  'database.password',
];

export interface LoggerOptions {
  service: string;
  level?: string;
  /** Where lines go; standard output by default. Tests pass a stream to read them back. */
  destination?: DestinationStream;
}

/**
 * The one logger of a process: JSON lines, secrets redacted, and the request id, tenant and user
 * of the current request merged into every line.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      mixin() {
        const context = currentRequestContext();
        if (!context) return {};
        const fields: Record<string, string> = { reqId: context.reqId };
        if (context.tenant) fields.tenant = context.tenant;
        if (context.userId) fields.userId = context.userId;
        return fields;
      },
    },
    options.destination,
  );
}
