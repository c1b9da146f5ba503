import { MigrationError, MigrationErrorCode } from './errors.js';

/**
 * Where the migrations connect: a PostgreSQL URL read from DATABASE_URL.
 *
 * NOTE: This reads one environment variable on purpose. The shared configuration loader of
 * services/shared (which also accepts DATABASE_HOST, PORT, USERNAME, PASSWORD and NAME) will
 * replace this body once it exists, so that the services and the migrations read one format.
 */
export function databaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const url = env.DATABASE_URL?.trim();
  if (!url) {
    throw new MigrationError(
      MigrationErrorCode.Configuration,
      'cannot connect to PostgreSQL: DATABASE_URL is not set (postgres://user:password@host/db)',
    );
  }
  return url;
}
