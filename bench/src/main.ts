/**
 * `make bench`: runs every benchmark (or those named as arguments) against a throw-away
 * embedded PostgreSQL and writes the report to bench/results/ (BENCH_OUT to choose another
 * folder). VEXTRUS_BENCH_SMOKE=1 runs each for a few seconds only; BENCH_ROUNDS and
 * BENCH_SECONDS override the rounds per side and the length of each load run.
 *
 *   node --import tsx --conditions=vextrus-source bench/src/main.ts [name …]
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO_ROOT, startPostgres } from '@vextrus/devkit';
import { benchSettings } from './harness.js';
import { runBenchmarks } from './run.js';

const settings = benchSettings();
const only = process.argv.slice(2).filter((arg) => arg.length > 0);
const folder = await mkdtemp(path.join(tmpdir(), 'vextrus-bench-pg-'));
// As root the server runs as the postgres user, which must be able to enter this folder.
await chmod(folder, 0o755);
const cluster = await startPostgres({
  dataDir: path.join(folder, 'data'),
  password: randomBytes(12).toString('hex'),
  durable: false,
});
process.env.VEXTRUS_TEST_POSTGRES_URL = cluster.url();
// Interrupted, the database goes too (the control planes stop themselves on these signals).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cluster
      .stop()
      .then(() => rm(folder, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  });
}
try {
  const result = await runBenchmarks({
    settings,
    only,
    folder: process.env.BENCH_OUT ?? path.join(REPO_ROOT, 'bench/results'),
    command: `make bench${only.length > 0 ? ` BENCH="${only.join(' ')}"` : ''}`,
    log: (message) => console.log(`[bench] ${message}`),
  });
  console.log(`[bench] report: ${path.relative(process.cwd(), result.reportFile)}`);
  if (result.failures.length > 0) process.exitCode = 1;
} finally {
  await cluster.stop();
  await rm(folder, { recursive: true, force: true });
}
