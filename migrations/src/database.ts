import { hostname } from 'node:os';
import type { ConnectionOptions } from 'node:tls';
import { QueryTypes, Sequelize, type Options, type Transaction } from 'sequelize';
import { SSL_MODES, tlsOptions } from '@vextrus/shared';
import { databaseUrl } from './connection.js';
import { MigrationError, MigrationErrorCode } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { resolveRoleNames, type RoleNames } from './roles.js';

/** A connection pool plus what every operation needs to know: role names, logger, lock wait. */
export interface Database {
  readonly sequelize: Sequelize;
  readonly roles: RoleNames;
  readonly logger: Logger;
  /** How long an operation waits for another run's advisory lock before it gives up. */
  readonly lockTimeoutMs: number;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** A PostgreSQL URL; DATABASE_URL when absent. */
  url?: string;
  roles?: Partial<RoleNames>;
  logger?: Logger;
  lockTimeoutMs?: number;
  /** Connections in the pool; each running operation holds one more for its advisory lock. */
  poolMax?: number;
}

const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/** application_name shows in pg_stat_activity, so a busy lock can say which run holds it. */
function applicationName(): string {
  return `vextrus-migrations pid ${process.pid} on ${hostname()}`.slice(0, 63);
}

/**
 * The TLS option for the URL's sslmode, with the meaning the services give it (tlsOptions of
 * services/shared): the migrations must connect wherever the services do, and refuse where they
 * refuse.
 */
function sslOption(mode: string | null): { ssl: boolean | ConnectionOptions } {
  if (mode === null) return tlsOptions('disable');
  const known = SSL_MODES.find((m) => m === mode);
  if (known) return tlsOptions(known);
  throw new MigrationError(
    MigrationErrorCode.Configuration,
    `cannot connect to PostgreSQL: the URL's sslmode must be one of ` +
      `${SSL_MODES.join(', ')}, not ${JSON.stringify(mode.slice(0, 20))}`,
  );
}

/**
 * The parts of a postgres:// URL, decoded. Sequelize's own URL parsing leaves the database name
 * percent-encoded, and hands sslmode to pg, which takes require for verify-full (warning on
 * stderr) where the services take it for libpq's require; so the URL is taken apart here.
 */
function connectionParts(url: string): {
  database: string;
  username: string;
  password: string;
  options: Options;
} {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new MigrationError(MigrationErrorCode.Configuration, 'the database URL is not a URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new MigrationError(
      MigrationErrorCode.Configuration,
      'the database URL must be a postgres:// or postgresql:// URL',
    );
  }
  return {
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')),
    username: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    options: {
      // A socket directory comes as `host=`, as libpq reads it.
      host: parsed.searchParams.get('host') ?? parsed.hostname.replace(/^\[|\]$/g, ''),
      ...(parsed.port ? { port: Number(parsed.port) } : {}),
      dialectOptions: sslOption(parsed.searchParams.get('sslmode')),
    },
  };
}

/** Opens a connection pool; connections are made lazily, on the first query. */
export function openDatabase(options: OpenDatabaseOptions = {}): Database {
  const parts = connectionParts(options.url ?? databaseUrl());
  const sequelize = new Sequelize(parts.database, parts.username, parts.password, {
    ...parts.options,
    dialect: 'postgres',
    logging: false,
    pool: { max: options.poolMax ?? 5, min: 0, idle: 10_000, acquire: 60_000 },
    dialectOptions: { ...parts.options.dialectOptions, application_name: applicationName() },
  });
  return {
    sequelize,
    roles: resolveRoleNames(options.roles),
    logger: options.logger ?? createLogger(),
    lockTimeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
    close: () => sequelize.close(),
  };
}

/**
 * Runs one statement. The transaction is always passed explicitly (null for none), so that a
 * CLS transaction of the calling process (see services/shared tenancy) is never picked up.
 */
export async function execute(
  db: Database,
  sql: string,
  bind: unknown[] = [],
  transaction: Transaction | null = null,
): Promise<void> {
  await db.sequelize.query(sql, { transaction, raw: true, ...(bind.length > 0 ? { bind } : {}) });
}

/** Runs a query and returns its rows. */
export async function select<T extends object>(
  db: Database,
  sql: string,
  bind: unknown[] = [],
  transaction: Transaction | null = null,
): Promise<T[]> {
  return db.sequelize.query<T>(sql, {
    transaction,
    type: QueryTypes.SELECT,
    raw: true,
    ...(bind.length > 0 ? { bind } : {}),
  });
}

/** Runs fn in a transaction of its own (never the caller's CLS one) and commits. */
export async function inTransaction<T>(
  db: Database,
  fn: (transaction: Transaction) => Promise<T>,
): Promise<T> {
  const transaction = await db.sequelize.transaction();
  try {
    const result = await fn(transaction);
    await transaction.commit();
    return result;
  } catch (err) {
    await transaction.rollback().catch(() => undefined);
    throw err;
  }
}
