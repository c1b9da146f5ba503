/**
 * Provisions one tenant and SIGKILLs itself right after the step named in KILL_AFTER has
 * committed: no cleanup, no rollback from the client, the server just loses the connection.
 */
import { pino } from 'pino';
import { openDatabase, provision, type RoleNames } from '../../src/index.js';

const db = openDatabase({
  url: process.env.TEST_DATABASE_URL ?? '',
  roles: JSON.parse(process.env.TEST_ROLES ?? '{}') as RoleNames,
  logger: pino({ level: 'silent' }),
});
await provision(db, process.env.TEST_SLUG ?? '', {
  afterStep: (step) => {
    if (step === process.env.KILL_AFTER) process.kill(process.pid, 'SIGKILL');
  },
});
await db.close();
