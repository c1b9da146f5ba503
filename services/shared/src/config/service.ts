import { isIP } from 'node:net';
import { readDatabaseConfig, type DatabaseConfig } from './database.js';
import { EnvReader } from './env.js';
import { ConfigError } from './errors.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Settings every service reads; a service adds its own through `extra`. */
export interface ServiceConfig {
  service: string;
  host: string;
  port: number;
  logLevel: LogLevel;
  /** Largest accepted request body in bytes. */
  bodyLimitBytes: number;
  /** How long in-flight requests may take to finish after SIGTERM. */
  shutdownTimeoutMs: number;
  /** How long readiness reports false before the listener closes (lets load balancers notice). */
  shutdownDelayMs: number;
  /** How many reverse proxies in front of the service may set X-Forwarded-For. */
  trustProxyHops: number;
  database: DatabaseConfig;
}

export interface ServiceDefaults {
  service: string;
  port: number;
}

/** A DNS name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

/** HOST must be an IP address or a host name; anything else would fail only at listen. */
function readListenHost(reader: EnvReader): string {
  const host = reader.string('HOST', '0.0.0.0');
  if (isIP(host) === 0 && !HOST_NAME.test(host)) {
    reader.report('HOST', `HOST must be an IP address or a host name, got "${host}"`);
  }
  return host;
}

/**
 * Loads and validates the whole configuration once, at start-up. Throws a ConfigError that
 * names every missing or invalid variable; nothing connects anywhere before this succeeds.
 */
export function loadServiceConfig<T extends object = object>(
  defaults: ServiceDefaults,
  env: NodeJS.ProcessEnv = process.env,
  extra?: (reader: EnvReader) => T,
): ServiceConfig & T {
  const reader = new EnvReader(env);
  const base = {
    service: defaults.service,
    host: readListenHost(reader),
    port: reader.integer('PORT', defaults.port, 0, 65535),
    logLevel: reader.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    bodyLimitBytes: reader.integer('HTTP_BODY_LIMIT_BYTES', 100 * 1024, 1024, 50 * 1024 * 1024),
    shutdownTimeoutMs: reader.integer('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 300_000),
    shutdownDelayMs: reader.integer('SHUTDOWN_DELAY_MS', 0, 0, 60_000),
    trustProxyHops: reader.integer('TRUST_PROXY_HOPS', 0, 0, 10),
  };
  // Read by startTracing before the configuration; checked here so that a value the exporter
  // cannot use is refused instead of silently replaced by its default address.
  reader.url('OTEL_EXPORTER_OTLP_ENDPOINT', ['http:', 'https:']);
  const database = readDatabaseConfig(reader);
  const more = extra ? extra(reader) : ({} as T);
  if (reader.problems.length > 0 || !database) throw new ConfigError(reader.problems);
  return { ...base, database, ...more };
}
