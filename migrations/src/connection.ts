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
  const url = new URL(`postgres://${PLACEHOLDER_HOST}`);
  setHost(url, config.host);
  url.port = String(config.port);
  url.username = encodeURIComponent(config.username);
  url.password = encodeURIComponent(config.password);
  url.pathname = `/${encodeURIComponent(config.database)}`;
  if (config.sslMode !== 'disable') url.searchParams.set('sslmode', config.sslMode);
  return url.toString();
}

/** The host of a fresh URL: still there after setting the host means the setter refused it. */
const PLACEHOLDER_HOST = 'placeholder.invalid';

/**
 * Puts the host into the URL. The hostname setter ignores what it cannot hold, or keeps only a
 * part of it, without a word; so a socket directory goes into `host=` (as libpq reads it), an
 * IPv6 address into brackets, and a host the URL still does not hold as given is refused rather
 * than replaced.
 */
function setHost(url: URL, host: string): void {
  if (host.startsWith('/')) {
    url.hostname = 'localhost';
    url.searchParams.set('host', host);
    return;
  }
  const ipv6 = host.includes(':');
  const wanted = ipv6 ? `[${host}]` : host;
  url.hostname = wanted;
  // An IPv6 address may come back in a shorter form; anything else must come back as given.
  const kept = ipv6
    ? url.hostname !== PLACEHOLDER_HOST
    : url.hostname.toLowerCase() === wanted.toLowerCase();
  if (!kept) {
    throw new MigrationError(
      MigrationErrorCode.Configuration,
      `cannot connect to PostgreSQL: the database host ${JSON.stringify(host.slice(0, 80))} is ` +
        'not a host name, an IP address or a socket directory',
    );
  }
}
