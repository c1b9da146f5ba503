import { ConfigError, EnvReader, readDatabaseConfig } from '@vextrus/shared';
import { MigrationError, MigrationErrorCode } from './errors.js';

/**
 * Where the migrations connect, read like the services read it: DATABASE_HOST, DATABASE_PORT,
 * DATABASE_USERNAME, DATABASE_PASSWORD and DATABASE_NAME, or DATABASE_URL (each explicit variable
 * overriding its part of the URL), any of them also from NAME_FILE.
 */
export function databaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const reader = new EnvReader(env);
  const config = readDatabaseConfig(reader);
  if (!config || reader.problems.length > 0) {
    const problems = new ConfigError(reader.problems).message;
    throw new MigrationError(
      MigrationErrorCode.Configuration,
      `cannot connect to PostgreSQL: ${problems}`,
    );
  }
  const url = new URL('postgres://localhost');
  // An IPv6 address goes in brackets; the hostname setter silently ignores one without them.
  url.hostname = config.host.includes(':') ? `[${config.host}]` : config.host;
  url.port = String(config.port);
  url.username = encodeURIComponent(config.username);
  url.password = encodeURIComponent(config.password);
  url.pathname = `/${encodeURIComponent(config.database)}`;
  if (config.sslMode !== 'disable') url.searchParams.set('sslmode', config.sslMode);
  return url.toString();
}
