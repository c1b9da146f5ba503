/**
 * Mocha global fixture: one throw-away PostgreSQL cluster for the whole test run.
 * Suites create their own databases on it with createTestDatabase().
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startPostgres, type RunningPostgres } from '../postgres.js';

let cluster: RunningPostgres | undefined;
let folder: string | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  folder = await mkdtemp(path.join(tmpdir(), 'vextrus-test-pg-'));
  // As root the server runs as the postgres user, which must be able to enter this folder.
  await chmod(folder, 0o755);
  cluster = await startPostgres({
    dataDir: path.join(folder, 'data'),
    password: randomBytes(12).toString('hex'),
    durable: false,
  });
  process.env.VEXTRUS_TEST_POSTGRES_URL = cluster.url();
}

export async function mochaGlobalTeardown(): Promise<void> {
  await cluster?.stop();
  if (folder) await rm(folder, { recursive: true, force: true });
}
