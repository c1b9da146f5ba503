import { hostname } from 'node:os';
import { QueryTypes, Sequelize, type Transaction } from 'sequelize';
import { databaseUrl } from './connection.js';
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

/** Opens a connection pool; connections are made lazily, on the first query. */
export function openDatabase(options: OpenDatabaseOptions = {}): Database {
  const sequelize = new Sequelize(options.url ?? databaseUrl(), {
    dialect: 'postgres',
    logging: false,
    pool: { max: options.poolMax ?? 5, min: 0, idle: 10_000, acquire: 60_000 },
    dialectOptions: { application_name: applicationName() },
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
