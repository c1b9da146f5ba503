import type { EnvReader } from './env.js';

export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export interface DatabaseConfig {
  host: string;
  port: number;
  username: string;
  password: string;
  database: string;
  sslMode: SslMode;
  poolMax: number;
  /**
   * How long a statement waits for a lock held by other work (a stuck transaction, a migration's
   * DDL) before it fails and the request answers 503; 0 waits without limit.
   */
  lockTimeoutMs: number;
  /** Where the settings came from, for the start-up log (never includes the password). */
  source: string;
}

/** The explicit variables, and the part of DATABASE_URL each one overrides. */
const FIELDS = [
  { name: 'DATABASE_HOST', key: 'host' },
  { name: 'DATABASE_PORT', key: 'port' },
  { name: 'DATABASE_USERNAME', key: 'username' },
  { name: 'DATABASE_PASSWORD', key: 'password' },
  { name: 'DATABASE_NAME', key: 'database' },
] as const;

type FieldKey = (typeof FIELDS)[number]['key'];

/**
 * Decodes one percent-encoded part of DATABASE_URL. A malformed escape (such as `%ZZ` in a
 * password) is reported by the part's name; the value itself is never repeated.
 */
function decodePart(env: EnvReader, part: string, value: string): string | undefined {
  try {
    return decodeURIComponent(value);
  } catch {
    env.report(
      'DATABASE_URL',
      `DATABASE_URL has a malformed percent-encoding in its ${part}; encode "%" as "%25"`,
    );
    return undefined;
  }
}

/** The parts of DATABASE_URL, or undefined when it is absent or cannot be read. */
function fromUrl(
  env: EnvReader,
  url: URL | undefined,
): Partial<Record<FieldKey, string>> | undefined {
  if (!url) return undefined;
  const host = url.hostname ? decodePart(env, 'host', url.hostname) : '';
  const username = url.username ? decodePart(env, 'user name', url.username) : '';
  const password = url.password ? decodePart(env, 'password', url.password) : '';
  const name = decodePart(env, 'database name', url.pathname.replace(/^\//, ''));
  if (host === undefined || username === undefined || password === undefined) return undefined;
  if (name === undefined) return undefined;
  const parts: Partial<Record<FieldKey, string>> = {};
  if (host) parts.host = host.replace(/^\[|\]$/g, '');
  if (url.port) parts.port = url.port;
  if (username) parts.username = username;
  if (password) parts.password = password;
  if (name) parts.database = name;
  return parts;
}

/**
 * Resolves the database settings from DATABASE_HOST, DATABASE_PORT, DATABASE_USERNAME,
 * DATABASE_PASSWORD and DATABASE_NAME, or from DATABASE_URL. When both are given, each explicit
 * variable overrides the matching part of the URL. Problems are added to the reader.
 */
export function readDatabaseConfig(env: EnvReader): DatabaseConfig | undefined {
  const url = env.url('DATABASE_URL', ['postgres:', 'postgresql:']);
  const urlGiven = env.has('DATABASE_URL');
  const explicit = FIELDS.filter((f) => env.has(f.name));
  if (!urlGiven && explicit.length === 0) {
    env.problems.push(
      'no database configured: set DATABASE_URL, or DATABASE_HOST, DATABASE_USERNAME, ' +
        'DATABASE_PASSWORD and DATABASE_NAME',
    );
    return undefined;
  }

  const base = fromUrl(env, url);
  const merged: Partial<Record<FieldKey, string>> = { ...base };
  for (const field of FIELDS) {
    const value = env.raw(field.name);
    if (value !== undefined) merged[field.key] = value;
  }
  // A value of spaces (an empty Secret key with a newline, a templating slip) names nothing; it
  // is refused here instead of failing later as a host that cannot be found.
  for (const field of FIELDS) {
    const value = merged[field.key];
    if (field.key !== 'password' && value !== undefined && value.trim() === '') {
      env.report(field.name, `${field.name} is blank`);
      merged[field.key] = undefined;
    }
  }
  const hint = urlGiven ? ' (and DATABASE_URL does not give it)' : '';
  for (const field of FIELDS) {
    if (field.key !== 'port' && merged[field.key] === undefined && (base || !urlGiven)) {
      env.report(field.name, `${field.name} is missing${hint}`);
    }
  }
  // Digits only, as for PORT: Number() would also read 0x1F90, 5e3 or 5432.0 as a port.
  const port = /^\d+$/.test((merged.port ?? '5432').trim()) ? Number(merged.port ?? '5432') : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    env.report(
      'DATABASE_PORT',
      `DATABASE_PORT must be a port number from 1 to 65535, got "${merged.port}"`,
    );
  }
  const urlSslMode = url?.searchParams.get('sslmode') ?? undefined;
  const sslMode = env.oneOf('DATABASE_SSLMODE', SSL_MODES, 'disable');
  if (!env.has('DATABASE_SSLMODE') && urlSslMode && !isSslMode(urlSslMode)) {
    env.problems.push(`DATABASE_URL's sslmode must be one of ${SSL_MODES.join(', ')}`);
  }
  const poolMax = env.integer('DATABASE_POOL_MAX', 10, 1, 200);
  const lockTimeoutMs = env.integer('DATABASE_LOCK_TIMEOUT_MS', 10_000, 0, 600_000);

  if (!merged.host || !merged.username || !merged.password || !merged.database) return undefined;
  const overridden = explicit.map((f) => f.name);
  const source = !urlGiven
    ? 'DATABASE_* variables'
    : overridden.length === 0
      ? 'DATABASE_URL'
      : `DATABASE_URL, overridden by ${overridden.join(', ')}`;
  return {
    host: merged.host,
    port,
    username: merged.username,
    password: merged.password,
    database: merged.database,
    sslMode: env.has('DATABASE_SSLMODE') ? sslMode : isSslMode(urlSslMode) ? urlSslMode : sslMode,
    poolMax,
    lockTimeoutMs,
    source,
  };
}

function isSslMode(value: string | undefined): value is SslMode {
  return value !== undefined && (SSL_MODES as readonly string[]).includes(value);
}

/** What may be logged about the database settings: everything but the password. */
export function describeDatabase(config: DatabaseConfig): Record<string, unknown> {
  return {
    source: config.source,
    host: config.host,
    port: config.port,
    name: config.database,
    user: config.username,
    sslMode: config.sslMode,
    poolMax: config.poolMax,
    lockTimeoutMs: config.lockTimeoutMs,
  };
}
