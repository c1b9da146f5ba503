import type { Transaction } from 'sequelize';
import { Umzug, type UmzugStorage } from 'umzug';
import type { Database } from './database.js';
import { execute, select } from './database.js';
import { quoteIdent } from './identifiers.js';
import type { MigrationContext, NamedMigration } from './migration.js';
import { MIGRATION_TABLE } from './tenant/conventions.js';

/** One track of migrations applied to one schema. */
export interface Track {
  /** `platform` or `tenant`, for logs and messages. */
  readonly kind: 'platform' | 'tenant';
  readonly schema: string;
  readonly migrations: readonly NamedMigration[];
}

export interface TrackStatus {
  schema: string;
  executed: string[];
  pending: string[];
  /** Recorded as applied but unknown to this version of the code (a newer release ran?). */
  unknown: string[];
}

export type Direction = 'up' | 'down';

export interface RunOptions {
  direction: Direction;
  /**
   * Up: the last migration to apply (all by default). Down: the migration to revert down to,
   * inclusive, or 0 for all; by default only the last applied one is reverted.
   */
  to?: string | 0;
}

/**
 * Sets the current transaction to act as the owner (so that what it creates is owned by the
 * owner, whoever logged in) with the given schema first on the search path.
 */
export async function actAsOwner(
  db: Database,
  transaction: Transaction,
  schema: string,
): Promise<void> {
  await execute(db, `SET LOCAL ROLE ${quoteIdent(db.roles.owner)}`, [], transaction);
  await execute(
    db,
    "SELECT set_config('search_path', $1, true)",
    [`${quoteIdent(schema)}, pg_catalog`],
    transaction,
  );
}

/** Creates the track's record of applied migrations, in the track's own schema. */
export async function ensureMigrationTable(
  db: Database,
  transaction: Transaction,
  schema: string,
): Promise<void> {
  await execute(
    db,
    `CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.${quoteIdent(MIGRATION_TABLE)} (
       name text NOT NULL PRIMARY KEY,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
    [],
    transaction,
  );
}

async function appliedNames(db: Database, schema: string): Promise<string[]> {
  const table = `${quoteIdent(schema)}.${quoteIdent(MIGRATION_TABLE)}`;
  const [exists] = await select<{ found: boolean }>(
    db,
    'SELECT to_regclass($1) IS NOT NULL AS found',
    [table],
  );
  if (!exists?.found) return [];
  const rows = await select<{ name: string }>(db, `SELECT name FROM ${table} ORDER BY name`);
  return rows.map((row) => row.name);
}

/**
 * Runs one migration in a transaction of its own and records it in the same transaction, so a
 * kill at any moment leaves it either applied and recorded, or neither.
 */
async function runOne(
  db: Database,
  track: Track,
  migration: NamedMigration,
  direction: Direction,
): Promise<void> {
  const table = `${quoteIdent(track.schema)}.${quoteIdent(MIGRATION_TABLE)}`;
  const transaction = await db.sequelize.transaction();
  try {
    await actAsOwner(db, transaction, track.schema);
    const context: MigrationContext = {
      sequelize: db.sequelize,
      transaction,
      schema: track.schema,
      roles: db.roles,
      sql: (text, bind = []) => execute(db, text, bind, transaction),
    };
    await migration.module[direction](context);
    const record =
      direction === 'up'
        ? `INSERT INTO ${table} (name) VALUES ($1)`
        : `DELETE FROM ${table} WHERE name = $1`;
    await execute(db, record, [migration.name], transaction);
    await transaction.commit();
  } catch (err) {
    await transaction.rollback().catch(() => undefined);
    throw err;
  }
}

function createUmzug(db: Database, track: Track): Umzug<object> {
  // Each migration records itself inside its own transaction (see runOne), so umzug's own
  // logMigration and unlogMigration have nothing left to do.
  const storage: UmzugStorage<object> = {
    executed: () => appliedNames(db, track.schema),
    logMigration: () => Promise.resolve(),
    unlogMigration: () => Promise.resolve(),
  };
  const log = db.logger.child({ track: track.kind, schema: track.schema });
  return new Umzug<object>({
    migrations: track.migrations.map((migration) => ({
      name: migration.name,
      up: () => runOne(db, track, migration, 'up'),
      down: () => runOne(db, track, migration, 'down'),
    })),
    storage,
    context: {},
    logger: {
      info: (fields) => log.info(fields, 'migration'),
      warn: (fields) => log.warn(fields, 'migration'),
      error: (fields) => log.error(fields, 'migration'),
      debug: (fields) => log.debug(fields, 'migration'),
    },
  });
}

/** Applies or reverts migrations of a track; the caller holds the track's lock. */
export async function runTrack(db: Database, track: Track, options: RunOptions): Promise<string[]> {
  const umzug = createUmzug(db, track);
  const done =
    options.direction === 'up'
      ? await umzug.up(options.to === undefined || options.to === 0 ? {} : { to: options.to })
      : await umzug.down(options.to === undefined ? {} : { to: options.to });
  return done.map((migration) => migration.name);
}

/** What is applied and what is pending in a track. */
export async function trackStatus(db: Database, track: Track): Promise<TrackStatus> {
  const executed = await appliedNames(db, track.schema);
  const known = new Set(track.migrations.map((migration) => migration.name));
  const applied = new Set(executed);
  return {
    schema: track.schema,
    executed: executed.filter((name) => known.has(name)),
    pending: track.migrations.map((m) => m.name).filter((name) => !applied.has(name)),
    unknown: executed.filter((name) => !known.has(name)),
  };
}
