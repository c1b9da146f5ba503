/**
 * Benchmark (reported, never a pass/fail test): GET a page of 50 organizations with a token, RLS
 * and the tenant transaction at concurrency 64, against (a) a bare node:http + pg handler running
 * the same SQL in the same transaction shape and (b) pgbench running that transaction.
 *
 *   node --import tsx --conditions=vextrus-source services/organization/test/bench/list-organizations.ts
 *
 * BENCH_SECONDS (default 10) sets each run's length, BENCH_ROUNDS (default 3) how many alternating
 * runs of each side are made (the median is reported) and BENCH_CONCURRENCY (default 64) the
 * number of clients; every run is preceded by a 2 s warm-up. Results are printed, never asserted.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { writeFile, mkdtemp, rm, chmod } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import {
  createPlane,
  freePort,
  spawnTs,
  startPostgres,
  type SpawnedProcess,
} from '@vextrus/devkit';
import { provision, seedOrganization } from '@vextrus/migrations';
import { withTenantTransaction } from '@vextrus/shared';
import { Sequelize } from 'sequelize';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const POOL_MAX = 10;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

interface Result {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

/** A closed loop of `concurrency` clients, each sending its next request when one answers. */
async function load(
  url: string,
  headers: Record<string, string>,
  seconds: number,
): Promise<Result> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  let errors = 0;
  const until = Date.now() + seconds * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = process.hrtime.bigint();
      const req = http.get(url, { agent, headers }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200)
            latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          else errors++;
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
    });
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < until) await one();
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    requests: latencies.length,
    errors,
    rps: latencies.length / elapsed,
    p50: at(0.5),
    p99: at(0.99),
  };
}

/** The round with the median throughput. */
function median(rounds: Result[]): Result {
  const sorted = [...rounds].sort((a, b) => a.rps - b.rps);
  return sorted[Math.floor(sorted.length / 2)] as Result;
}

async function measure(url: string, headers: Record<string, string>): Promise<Result> {
  await load(url, headers, 2);
  return load(url, headers, SECONDS);
}

function pgbench(url: URL, script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'pgbench',
      [
        '-n',
        '-M',
        'prepared',
        '-c',
        String(POOL_MAX),
        '-j',
        '4',
        '-T',
        String(SECONDS),
        '-f',
        script,
      ],
      {
        env: {
          PATH: process.env.PATH,
          PGHOST: url.hostname,
          PGPORT: url.port,
          PGUSER: decodeURIComponent(url.username),
          PGPASSWORD: decodeURIComponent(url.password),
          PGDATABASE: url.pathname.slice(1),
        },
      },
      (error, stdout, stderr) =>
        error ? reject(new Error(stderr || error.message)) : resolve(stdout),
    );
  });
}

async function main(): Promise<void> {
  const folder = await mkdtemp(path.join(tmpdir(), 'vextrus-bench-'));
  await chmod(folder, 0o755);
  const cluster = await startPostgres({
    dataDir: path.join(folder, 'data'),
    password: randomBytes(12).toString('hex'),
    durable: false,
  });
  process.env.VEXTRUS_TEST_POSTGRES_URL = cluster.url();
  const children: SpawnedProcess[] = [];
  const plane = await createPlane('bench');
  let jwks: http.Server | undefined;
  try {
    const tenant = await provision(plane.db, 'bench');
    await seedOrganization(plane.db, 'bench', { name: 'Bench Group', code: 'BENCH' });
    const app = new Sequelize(plane.appUrl, { logging: false });
    await withTenantTransaction(app, tenant, async () => {
      for (let i = 0; i < 199; i++) {
        await app.query(
          `INSERT INTO organizations (code, legal_name, display_name, country, currency, time_zone)
           VALUES ($1, $2, $2, 'BD', 'BDT', 'Asia/Dhaka')`,
          { bind: [`ORG-${String(i).padStart(3, '0')}`, `Organization ${i}`] },
        );
      }
    });
    await app.close();

    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' };
    jwks = http.createServer((_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    const jwksPort = await freePort();
    await new Promise<void>((resolve) => jwks?.listen(jwksPort, '127.0.0.1', resolve));

    const servicePort = await freePort();
    const service = spawnTs('services/organization/src/main.ts', {
      DATABASE_URL: plane.appUrl,
      DATABASE_POOL_MAX: String(POOL_MAX),
      HOST: '127.0.0.1',
      PORT: String(servicePort),
      LOG_LEVEL: 'warn',
      AUTH_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json`,
    });
    children.push(service);
    const basePort = await freePort();
    const baseline = spawnTs('services/organization/test/bench/baseline-server.ts', {
      DATABASE_URL: plane.appUrl,
      POOL_MAX: String(POOL_MAX),
      PORT: String(basePort),
      TENANT_ID: tenant.tenantId,
      SCHEMA: tenant.schema,
      ROLE: tenant.role,
    });
    children.push(baseline);
    await baseline.waitForOutput((out) => out.includes('listening'));
    for (let i = 0; i < 100; i++) {
      const ready = await fetch(`http://127.0.0.1:${servicePort}/health/ready`).catch(
        () => undefined,
      );
      if (ready?.ok) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const token = jwt.sign(
      { tid: tenant.tenantId, tenant: 'bench', roles: ['member'] },
      privateKey,
      {
        algorithm: 'ES256',
        keyid: 'bench',
        issuer: 'vextrus-auth',
        audience: 'vextrus-api',
        subject: randomUUID(),
        jwtid: randomUUID(),
        expiresIn: 3600,
      },
    );
    // Alternating rounds, so that load from outside the benchmark hits both sides alike.
    const serviceRounds: Result[] = [];
    const baselineRounds: Result[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      serviceRounds.push(
        await measure(`http://127.0.0.1:${servicePort}/org/organizations?limit=50`, {
          Authorization: `Bearer ${token}`,
          'X-Tenant-ID': 'bench',
        }),
      );
      baselineRounds.push(await measure(`http://127.0.0.1:${basePort}/`, {}));
    }
    const serviceResult = median(serviceRounds);
    const baselineResult = median(baselineRounds);

    const script = path.join(folder, 'list.sql');
    await writeFile(
      script,
      [
        'BEGIN;',
        `SELECT set_config('app.tenant_id', '${tenant.tenantId}', true), set_config('search_path', '"${tenant.schema}"', true), set_config('role', '${tenant.role}', true);`,
        'SELECT *, code AS _cursor FROM organizations ORDER BY code ASC, id ASC LIMIT 51;',
        'COMMIT;',
        '',
      ].join('\n'),
    );
    const bench = await pgbench(new URL(plane.appUrl), script);
    const tps = Number(/tps = ([\d.]+)/.exec(bench)?.[1] ?? NaN);
    const latency = Number(/latency average = ([\d.]+) ms/.exec(bench)?.[1] ?? NaN);

    const line = (name: string, r: Result): string =>
      `${name.padEnd(34)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  (${r.requests} ok, ${r.errors} errors)`;
    process.stdout.write(
      [
        `GET a page of 50 organizations, concurrency ${CONCURRENCY}, pools of ${POOL_MAX}, median of ${ROUNDS} alternating ${SECONDS} s runs`,
        line('organization service', serviceResult),
        line('(a) node:http + pg baseline', baselineResult),
        `${'(b) pgbench, same transaction'.padEnd(34)} ${tps.toFixed(0).padStart(7)} tx/s   latency avg ${latency.toFixed(2)} ms (${POOL_MAX} clients)`,
        `service / (a) = ${((100 * serviceResult.rps) / baselineResult.rps).toFixed(0)}%   service / (b) = ${((100 * serviceResult.rps) / tps).toFixed(0)}%`,
        '',
      ].join('\n'),
    );
  } finally {
    for (const child of children) child.child.kill('SIGTERM');
    await Promise.all(children.map((c) => c.exited));
    jwks?.close();
    await plane.close();
    await cluster.stop();
    await rm(folder, { recursive: true, force: true });
  }
}

await main();
