/**
 * Issue 4: login latency with the real argon2id parameters, against the bare hash verification
 * those parameters cost; and /health/live while logins flood the service at concurrency 32,
 * against /health/live of the idle service.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hash, verify } from '@node-rs/argon2';
import { createPlane, freePort, spawnTs, type SpawnedProcess } from '@vextrus/devkit';
import { provision, seedAdmin } from '@vextrus/migrations';
import { HASH_OPTIONS } from '../../../services/auth/src/passwords.js';
import { interleave, type Benchmark } from '../harness.js';
import { load, waitForHttp, type LoadResult } from '../load.js';
import { msSince, summarize } from '../stats.js';

const PASSWORD = 'correct horse battery staple';
const EMAIL = 'admin@bench.test';
const FLOOD_CONCURRENCY = 32;

/** The median of `count` calls of `fn`, made one after another, in milliseconds. */
async function medianOf(count: number, fn: () => Promise<void>): Promise<number> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await fn();
    latencies.push(msSince(started));
  }
  return summarize(latencies).median;
}

export const login: Benchmark = {
  name: 'login',
  issue: 4,
  async run({ settings, log }) {
    const keys = await mkdtemp(path.join(tmpdir(), 'vextrus-bench-keys-'));
    const plane = await createPlane('bench_auth');
    let service: SpawnedProcess | undefined;
    try {
      await provision(plane.db, 'bench');
      const admin = await seedAdmin(plane.db, 'bench', { email: EMAIL, name: 'Bench Admin' });
      const port = await freePort();
      service = spawnTs('services/auth/src/main.ts', {
        DATABASE_URL: plane.appUrl,
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'warn',
        AUTH_LOCAL_KEYS_DIR: keys,
        // The throttle would refuse the flood after ten attempts; it is not what is measured.
        AUTH_LOGIN_ACCOUNT_LIMIT: '10000',
        AUTH_LOGIN_ADDRESS_LIMIT: '1000000',
        AUTH_LOGIN_WINDOW_SECONDS: '1',
      });
      const base = `http://127.0.0.1:${port}`;
      await waitForHttp(`${base}/health/ready`);
      const headers = { 'Content-Type': 'application/json', 'X-Tenant-ID': 'bench' };
      const setup = await fetch(`${base}/auth/setup`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ token: admin.setupToken, password: PASSWORD }),
      });
      if (!setup.ok) throw new Error(`POST /auth/setup answered ${setup.status}`);
      const body = JSON.stringify({ email: EMAIL, password: PASSWORD });
      const loginOnce = async (): Promise<void> => {
        const response = await fetch(`${base}/auth/login`, { method: 'POST', headers, body });
        await response.arrayBuffer();
        if (!response.ok) throw new Error(`POST /auth/login answered ${response.status}`);
      };
      const stored = await hash(PASSWORD, HASH_OPTIONS);

      log('login: POST /auth/login vs. bare argon2id verify');
      const count = settings.smoke ? 3 : 30;
      const logins = await interleave(
        settings.rounds,
        () => medianOf(count, loginOnce),
        () =>
          medianOf(count, async () => {
            if (!(await verify(stored, PASSWORD))) throw new Error('argon2 verify failed');
          }),
      );

      log(`login: /health/live during a login flood at concurrency ${FLOOD_CONCURRENCY}`);
      const probe = (seconds: number): Promise<LoadResult> =>
        load({ url: `${base}/health/live`, concurrency: 1, seconds, maxRequests: 100_000 });
      const flood: LoadResult[] = [];
      const during: number[] = [];
      const idle: number[] = [];
      for (let round = 0; round < settings.rounds; round++) {
        const [logins, health] = await Promise.all([
          load({
            url: `${base}/auth/login`,
            method: 'POST',
            headers,
            body,
            concurrency: FLOOD_CONCURRENCY,
            seconds: settings.seconds,
            maxRequests: 20_000,
          }),
          probe(settings.seconds),
        ]);
        flood.push(logins);
        during.push(health.p99);
        idle.push((await probe(settings.seconds)).p99);
      }
      const floodRate = summarize(flood.map((r) => r.rps)).median;
      const floodErrors = flood.reduce((n, r) => n + r.errors, 0);
      return [
        {
          id: 'login-latency',
          issue: 4,
          title: 'Login latency with the real argon2id parameters',
          unit: 'ms (median per login)',
          better: 'lower',
          subject: { label: 'POST /auth/login, one at a time', samples: logins.subject },
          baseline: {
            label: `bare argon2id verify (${HASH_OPTIONS.memoryCost} KiB, t=${HASH_OPTIONS.timeCost})`,
            samples: logins.baseline,
          },
          method:
            `Each round makes ${count} successful logins one after another and keeps their ` +
            'median (the login p50); the baseline verifies the same password against an argon2id ' +
            'hash of the same parameters in the benchmark process. No target number was set.',
        },
        {
          id: 'health-during-login-flood',
          issue: 4,
          title: `/health/live p99 during a login flood at concurrency ${FLOOD_CONCURRENCY}`,
          unit: 'ms (p99)',
          better: 'lower',
          subject: { label: 'during the login flood', samples: during },
          baseline: { label: 'idle service', samples: idle },
          target: { text: '< 50 ms', met: summarize(during).median < 50 },
          method:
            `Each round floods POST /auth/login with ${FLOOD_CONCURRENCY} clients for ` +
            `${settings.seconds} s while one client calls /health/live back to back, then probes ` +
            '/health/live alone for as long. The login throttle is raised for the run.',
          details: {
            'logins during the flood': `${floodRate.toFixed(1)}/s (median of rounds), ${floodErrors} errors`,
          },
        },
      ];
    } finally {
      service?.child.kill('SIGTERM');
      await service?.exited;
      await plane.close();
      await rm(keys, { recursive: true, force: true });
    }
  },
};
