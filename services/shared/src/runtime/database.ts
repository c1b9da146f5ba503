import pg from 'pg';
import { Sequelize } from 'sequelize';
import type { Logger } from 'pino';
import type { ConnectionOptions } from 'node:tls';
import type { DatabaseConfig, SslMode } from '../config/database.js';

/**
 * The driver's TLS option for an sslmode, as the platform means it (libpq's meanings): the
 * services and the migrations connect alike.
 */
export function tlsOptions(mode: SslMode): { ssl: boolean | ConnectionOptions } {
  switch (mode) {
    case 'disable':
      return { ssl: false };
    case 'require':
      // Encrypted but unauthenticated, like libpq's sslmode=require.
      return { ssl: { rejectUnauthorized: false } };
    case 'verify-ca':
      return { ssl: { rejectUnauthorized: true, checkServerIdentity: () => undefined } };
    case 'verify-full':
      return { ssl: { rejectUnauthorized: true } };
  }
}

/**
 * How long opening one connection may take. Without a bound, a server that accepts the TCP
 * connection and never answers (a stuck PostgreSQL, a half-open proxy) holds the start-up, and
 * every request that needs a new connection, forever.
 */
export const CONNECT_TIMEOUT_MS = 5_000;

/** A Sequelize instance on the configured server; it connects lazily, on first use. */
export function createSequelize(
  config: DatabaseConfig,
  logger: Logger,
  applicationName: string,
): Sequelize {
  return new Sequelize(config.database, config.username, config.password, {
    host: config.host,
    port: config.port,
    dialect: 'postgres',
    dialectModule: pg,
    dialectOptions: {
      ...tlsOptions(config.sslMode),
      application_name: applicationName,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // A session setting, so every statement has it; a transaction may set its own (the audit
      // API's queries do).
      lock_timeout: config.lockTimeoutMs,
    },
    pool: { max: config.poolMax, min: 0, idle: 10_000, acquire: 10_000 },
    logging: (sql) => logger.trace({ sql }, 'sql'),
    define: { underscored: true },
  });
}

/** Readiness: the server answers a trivial query. */
export async function pingDatabase(sequelize: Sequelize): Promise<void> {
  try {
    await sequelize.query('SELECT 1');
  } catch (err) {
    throw new Error('database unreachable', { cause: err });
  }
}

/** The process cannot start for a reason other than its configuration; logged without a stack. */
export class StartupError extends Error {
  override readonly name = 'StartupError';

  constructor(
    readonly code: 'DATABASE_UNAVAILABLE' | 'LISTEN_FAILED',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Connects once before anything else uses the database, so that a server that cannot be reached
 * is reported as such (where, and why) instead of through the first check that happens to run.
 */
export async function connectAtStartup(
  sequelize: Sequelize,
  config: DatabaseConfig,
): Promise<void> {
  try {
    await sequelize.query('SELECT 1', { transaction: null });
  } catch (err) {
    // The driver's reason names the address or the refusal, never the password.
    const reason = err instanceof Error ? err.message : String(err);
    throw new StartupError(
      'DATABASE_UNAVAILABLE',
      `cannot connect to PostgreSQL at ${config.host}:${config.port} (database ` +
        `${config.database}, user ${config.username}): ${reason}`,
    );
  }
}
