import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from './database.js';
import { execute, inTransaction, select } from './database.js';
import { MigrationError, MigrationErrorCode } from './errors.js';

/**
 * First key of every advisory lock the platform takes ("VX" plus 1), so that its locks are easy
 * to find in pg_locks and do not collide with other users of two-key advisory locks.
 */
export const LOCK_CLASS = 0x56580001;
const POLL_INTERVAL_MS = 100;

/** The advisory lock name of a track: `platform`, `roles`, or `tenant:<slug>`. */
export type LockName = 'platform' | 'roles' | `tenant:${string}`;

interface LockHolder {
  pid: number;
  application_name: string | null;
  usename: string | null;
  client_addr: string | null;
  xact_start: Date | null;
}

/**
 * Runs fn while holding the advisory lock `name`. The lock is transaction-scoped on a connection
 * of its own, so that it is released when fn ends and also when the process dies. A second run
 * waits up to db.lockTimeoutMs, then fails saying which backend holds the lock.
 */
export async function withAdvisoryLock<T>(
  db: Database,
  name: LockName,
  fn: () => Promise<T>,
): Promise<T> {
  return inTransaction(db, async (transaction) => {
    // The locking session idles in its transaction while fn works on other connections: a
    // server-wide idle_in_transaction_session_timeout would end it, and the lock with it, while
    // fn still runs, letting a second run in.
    await execute(
      db,
      "SELECT set_config('idle_in_transaction_session_timeout', '0', true)",
      [],
      transaction,
    );
    const deadline = Date.now() + db.lockTimeoutMs;
    for (;;) {
      const [row] = await select<{ locked: boolean }>(
        db,
        'SELECT pg_try_advisory_xact_lock($1, hashtext($2)) AS locked',
        [LOCK_CLASS, name],
        transaction,
      );
      if (row?.locked) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new MigrationError(MigrationErrorCode.LockBusy, await busy(db, name));
      await sleep(Math.min(POLL_INTERVAL_MS, left));
    }
    db.logger.debug({ lock: name }, 'lock acquired');
    return fn();
  });
}

async function busy(db: Database, name: LockName): Promise<string> {
  const holders = await select<LockHolder>(
    db,
    `SELECT a.pid, a.application_name, a.usename, a.client_addr::text AS client_addr, a.xact_start
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1::int4::oid AND l.objid = hashtext($2)::oid`,
    [LOCK_CLASS, name],
  );
  const who =
    holders
      .map((h) => {
        const app = h.application_name ? `application "${h.application_name}"` : 'no application';
        const since = h.xact_start ? `, since ${new Date(h.xact_start).toISOString()}` : '';
        const from = h.client_addr ? ` from ${h.client_addr}` : '';
        return `backend pid ${h.pid} (${app}, user ${h.usename ?? '?'}${from}${since})`;
      })
      .join('; ') || 'a backend that has just released it';
  return `cannot take the ${name} lock within ${db.lockTimeoutMs} ms: it is held by ${who}`;
}
