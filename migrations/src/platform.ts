import type { Database } from './database.js';
import { execute, inTransaction } from './database.js';
import { MigrationErrorCode, wrap } from './errors.js';
import { quoteIdent } from './identifiers.js';
import { withAdvisoryLock } from './lock.js';
import { platformMigrations } from './platform/index.js';
import {
  actAsOwner,
  ensureMigrationTable,
  runTrack,
  trackStatus,
  type RunOptions,
  type Track,
  type TrackStatus,
} from './runner.js';

export const PLATFORM_SCHEMA = 'platform';

const platformTrack: Track = {
  kind: 'platform',
  schema: PLATFORM_SCHEMA,
  migrations: platformMigrations,
};

/**
 * Creates the platform schema (owned by the owner role) and its migration table, and lets the
 * application and retention roles use the schema: the policy helper function lives there.
 */
async function ensurePlatformSchema(db: Database): Promise<void> {
  await inTransaction(db, async (transaction) => {
    await actAsOwner(db, transaction, PLATFORM_SCHEMA);
    const schema = quoteIdent(PLATFORM_SCHEMA);
    await execute(db, `CREATE SCHEMA IF NOT EXISTS ${schema}`, [], transaction);
    const users = `${quoteIdent(db.roles.app)}, ${quoteIdent(db.roles.retention)}`;
    await execute(db, `GRANT USAGE ON SCHEMA ${schema} TO ${users}`, [], transaction);
    await ensureMigrationTable(db, transaction, PLATFORM_SCHEMA);
  });
}

/** Applies (or reverts) platform migrations under the platform lock; returns what ran. */
export async function migratePlatform(
  db: Database,
  options: RunOptions = { direction: 'up' },
): Promise<string[]> {
  const verb = options.direction === 'up' ? 'apply' : 'revert';
  try {
    return await withAdvisoryLock(db, 'platform', async () => {
      await ensurePlatformSchema(db);
      const done = await runTrack(db, platformTrack, options);
      db.logger.info(
        { track: 'platform', direction: options.direction, done },
        'platform migrated',
      );
      return done;
    });
  } catch (err) {
    throw wrap(MigrationErrorCode.MigrationFailed, `${verb} platform migrations`, err);
  }
}

/** Applied and pending platform migrations. */
export async function platformStatus(db: Database): Promise<TrackStatus> {
  try {
    return await trackStatus(db, platformTrack);
  } catch (err) {
    throw wrap(MigrationErrorCode.MigrationFailed, 'read the platform migration status', err);
  }
}
