/**
 * Issue 5: GET a page of 50 organizations with a token, RLS and the tenant transaction at
 * concurrency 64, against (a) a bare node:http + pg handler running the same SQL in the same
 * transaction shape (src/servers/organization-baseline.ts) and (b) pgbench running that
 * transaction. The three run interleaved, round after round.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPlane, freePort, spawnTs, type SpawnedProcess } from '@vextrus/devkit';
import { startIssuer } from '../servers/issuer.js';
import { provision, seedOrganization } from '@vextrus/migrations';
import { withTenantTransaction } from '@vextrus/shared';
import { Sequelize } from 'sequelize';
import type { Benchmark, Figure } from '../harness.js';
import { load, waitForHttp, type LoadResult } from '../load.js';
import { summarize } from '../stats.js';

const CONCURRENCY = 64;
const POOL_MAX = 10;

/** Transactions per second of pgbench running `script` for `seconds` (whole seconds, ≥ 1). */
function pgbench(url: URL, script: string, seconds: number): Promise<number> {
  const args = ['-n', '-M', 'prepared', '-c', String(POOL_MAX), '-j', '2'];
  args.push('-T', String(Math.max(1, Math.round(seconds))), '-f', script);
  return new Promise((resolve, reject) => {
    execFile(
      'pgbench',
      args,
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
      (error, stdout, stderr) => {
        if (error) reject(new Error(`pgbench failed: ${stderr || error.message}`));
        else resolve(Number(/tps = ([\d.]+)/.exec(stdout)?.[1] ?? NaN));
      },
    );
  });
}

/** Whether pgbench (Debian's postgresql-client) is on the PATH. */
function hasPgbench(): Promise<boolean> {
  return new Promise((resolve) => execFile('pgbench', ['--version'], (error) => resolve(!error)));
}

export const organizationList: Benchmark = {
  name: 'organization-list',
  issue: 5,
  async run({ settings, log }) {
    const folder = await mkdtemp(path.join(tmpdir(), 'vextrus-bench-org-'));
    const plane = await createPlane('bench_org');
    const children: SpawnedProcess[] = [];
    const closers: (() => Promise<void>)[] = [];
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

      const issuer = await startIssuer();
      closers.push(() => issuer.close());

      const servicePort = await freePort();
      children.push(
        spawnTs('services/organization/src/main.ts', {
          DATABASE_URL: plane.appUrl,
          DATABASE_POOL_MAX: String(POOL_MAX),
          HOST: '127.0.0.1',
          PORT: String(servicePort),
          LOG_LEVEL: 'warn',
          AUTH_JWKS_URL: issuer.jwksUrl,
        }),
      );
      const basePort = await freePort();
      const baseline = spawnTs('bench/src/servers/organization-baseline.ts', {
        DATABASE_URL: plane.appUrl,
        POOL_MAX: String(POOL_MAX),
        PORT: String(basePort),
        TENANT_ID: tenant.tenantId,
        SCHEMA: tenant.schema,
        ROLE: tenant.role,
      });
      children.push(baseline);
      await baseline.waitForOutput((out) => out.includes('listening'), 60_000);
      await waitForHttp(`http://127.0.0.1:${servicePort}/health/ready`);

      const token = issuer.token(tenant.tenantId, 'bench', ['member']);
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
      const withPgbench = await hasPgbench();

      const measure = async (url: string, headers: Record<string, string>): Promise<LoadResult> => {
        await load({ url, headers, concurrency: CONCURRENCY, seconds: settings.smoke ? 0.3 : 2 });
        const result = await load({
          url,
          headers,
          concurrency: CONCURRENCY,
          seconds: settings.seconds,
          maxRequests: 500_000,
        });
        if (result.ok === 0) throw new Error(`GET ${url}: no request succeeded`);
        return result;
      };
      log(`organization list: service vs. node:http + pg${withPgbench ? ' vs. pgbench' : ''}`);
      const service: LoadResult[] = [];
      const bare: LoadResult[] = [];
      const pgbenchTps: number[] = [];
      // Alternating rounds, so that load from outside the benchmark hits every side alike.
      for (let round = 0; round < settings.rounds; round++) {
        service.push(
          await measure(`http://127.0.0.1:${servicePort}/org/organizations?limit=50`, {
            Authorization: `Bearer ${token}`,
            'X-Tenant-ID': 'bench',
          }),
        );
        bare.push(await measure(`http://127.0.0.1:${basePort}/`, {}));
        if (withPgbench) {
          pgbenchTps.push(await pgbench(new URL(plane.appUrl), script, settings.seconds));
        }
      }

      const serviceRps = service.map((r) => r.rps);
      const ratio = summarize(serviceRps).median / summarize(bare.map((r) => r.rps)).median;
      const latencies = (results: LoadResult[]): string =>
        `p50 ${summarize(results.map((r) => r.p50)).median.toFixed(1)} ms, ` +
        `p99 ${summarize(results.map((r) => r.p99)).median.toFixed(1)} ms, ` +
        `${results.reduce((n, r) => n + r.errors, 0)} errors`;
      const figures: Figure[] = [
        {
          id: 'organization-list',
          issue: 5,
          title: 'GET a page of 50 organizations at concurrency 64',
          unit: 'requests/s',
          better: 'higher',
          subject: {
            label: 'organization service (token, RLS, tenant transaction)',
            samples: serviceRps,
          },
          baseline: {
            label: '(a) node:http + pg, same SQL and transaction',
            samples: bare.map((r) => r.rps),
          },
          target: { text: '≥ 50 % of (a)', met: ratio >= 0.5 },
          method:
            `A closed loop of ${CONCURRENCY} keep-alive clients for ${settings.seconds} s per round ` +
            `(after a warm-up), both servers with a pool of ${POOL_MAX} connections as the ` +
            'application role, the tenant holding 200 organizations.',
          details: {
            'service latency (median of rounds)': latencies(service),
            '(a) latency (median of rounds)': latencies(bare),
          },
        },
      ];
      if (withPgbench) {
        figures.push({
          id: 'organization-list-pgbench',
          issue: 5,
          title: 'The same page: service against pgbench running the transaction',
          unit: 'requests/s (transactions/s for pgbench)',
          better: 'higher',
          subject: { label: 'organization service', samples: serviceRps },
          baseline: {
            label: `(b) pgbench, ${POOL_MAX} clients, same transaction`,
            samples: pgbenchTps,
          },
          method:
            'pgbench -M prepared with the transaction of the baseline server (tenant settings and ' +
            'role, the keyset query, commit), run in the same rounds as the HTTP loads. No ' +
            'target: it shows what is left for HTTP, JSON and the service.',
        });
      }
      return figures;
    } finally {
      for (const child of children) child.child.kill('SIGTERM');
      await Promise.all(children.map((c) => c.exited));
      for (const close of closers) await close();
      await plane.close();
      await rm(folder, { recursive: true, force: true });
    }
  },
};
