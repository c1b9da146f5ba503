/**
 * Issue 3: what the tenant context costs and how long tenants take to provision and migrate.
 *
 * - The same page query (50 organizations after a random code) through the request transaction
 *   as the application role, with the tenant settings, the tenant role and forced RLS, against
 *   the same query as the superuser, which bypasses RLS, in a transaction that only sets the
 *   search path. The table owner cannot serve as the baseline: RLS is forced on it as well.
 * - Provisioning one tenant (schema, role, policies, every tenant migration).
 * - `tenants up --all` over every tenant with concurrency 4 against concurrency 1.
 */
import { performance } from 'node:perf_hooks';
import { createPlane } from '@vextrus/devkit';
import {
  migrateAllTenants,
  provision,
  type Database,
  type ProvisionResult,
} from '@vextrus/migrations';
import { transactionWithSettings, withTenantTransaction } from '@vextrus/shared';
import { QueryTypes, Sequelize } from 'sequelize';
import { interleave, type Benchmark } from '../harness.js';
import { msSince, summarize } from '../stats.js';

const PAGE = `SELECT id, code, legal_name, display_name, country, currency, time_zone, status,
  version, created_at, updated_at FROM organizations WHERE code > $1 ORDER BY code ASC, id ASC LIMIT 51`;

function code(i: number): string {
  return `ORG-${String(i).padStart(5, '0')}`;
}

/** The median latency of `count` page queries, each of a random tenant at a random position. */
async function pageLatency(
  count: number,
  tenants: readonly ProvisionResult[],
  rows: number,
  query: (tenant: ProvisionResult, after: string) => Promise<unknown>,
): Promise<number> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const tenant = tenants[Math.floor(Math.random() * tenants.length)] as ProvisionResult;
    const started = process.hrtime.bigint();
    await query(tenant, code(Math.floor(Math.random() * rows)));
    latencies.push(msSince(started));
  }
  return summarize(latencies).median;
}

/** How long `tenants up --all` takes, in milliseconds; a failed tenant fails the benchmark. */
async function migrateAllTime(db: Database, concurrency: number): Promise<number> {
  const started = performance.now();
  const result = await migrateAllTenants(db, { concurrency });
  if (result.failed.length > 0)
    throw new Error(`tenants up --all failed for ${result.failed.length} tenants`);
  return performance.now() - started;
}

export const tenantContext: Benchmark = {
  name: 'tenant-context',
  issue: 3,
  async run({ settings, log }) {
    const tenantCount = settings.smoke ? 3 : 100;
    const rows = settings.smoke ? 200 : 10_000;
    const queries = settings.smoke ? 20 : 500;
    const plane = await createPlane('bench_tenancy');
    const app = new Sequelize(plane.appUrl, { logging: false, pool: { max: 2 } });
    const superuser = new Sequelize(plane.database.url, { logging: false, pool: { max: 2 } });
    try {
      log(`tenant context: provisioning ${tenantCount} tenants`);
      const tenants: ProvisionResult[] = [];
      const provisioning: number[] = [];
      for (let i = 0; i < tenantCount; i++) {
        const started = performance.now();
        tenants.push(await provision(plane.db, `bench${i}`));
        provisioning.push(performance.now() - started);
      }

      log(`tenant context: ${rows} organizations in each tenant`);
      for (const tenant of tenants) {
        await superuser.query(
          `INSERT INTO "${tenant.schema}".organizations
             (tenant_id, code, legal_name, display_name, country, currency, time_zone)
           SELECT $1, 'ORG-' || lpad(g::text, 5, '0'), 'Organization ' || g, 'Org ' || g,
                  'BD', 'BDT', 'Asia/Dhaka'
           FROM generate_series(0, $2::int - 1) AS g`,
          { bind: [tenant.tenantId, rows] },
        );
        await superuser.query(`ANALYZE "${tenant.schema}".organizations`);
      }

      log('tenant context: page query with RLS vs. without');
      const withRls = (tenant: ProvisionResult, after: string): Promise<unknown> =>
        withTenantTransaction(app, tenant, () =>
          app.query(PAGE, { bind: [after], type: QueryTypes.SELECT }),
        );
      // The same transaction machinery as withTenantTransaction (one round trip opens it and
      // applies the settings), with the search path as its only setting.
      const withoutRls = (tenant: ProvisionResult, after: string): Promise<unknown> =>
        transactionWithSettings(superuser, { search_path: `"${tenant.schema}"` }, () =>
          // The tenant predicate RLS would add, written out, so that both sides use one plan.
          superuser.query(PAGE.replace('WHERE', 'WHERE tenant_id = $2 AND'), {
            bind: [after, tenant.tenantId],
            type: QueryTypes.SELECT,
          }),
        );
      // One unmeasured pass warms both pools and the plan caches.
      await pageLatency(20, tenants, rows, withRls);
      await pageLatency(20, tenants, rows, withoutRls);
      const pages = await interleave(
        settings.rounds,
        () => pageLatency(queries, tenants, rows, withRls),
        () => pageLatency(queries, tenants, rows, withoutRls),
      );
      const overhead = summarize(pages.subject).median / summarize(pages.baseline).median - 1;

      log('tenant context: tenants up --all, concurrency 4 vs. 1');
      const upRounds = Math.max(1, Math.min(settings.rounds, 3));
      const migrateAll = await interleave(
        upRounds,
        () => migrateAllTime(plane.db, 4),
        () => migrateAllTime(plane.db, 1),
      );

      return [
        {
          id: 'tenant-context-page',
          issue: 3,
          title: `A page of 50 organizations, ${tenantCount} tenants × ${rows} rows`,
          unit: 'ms (median per query)',
          better: 'lower',
          subject: {
            label: 'request transaction, tenant role, forced RLS',
            samples: pages.subject,
          },
          baseline: {
            label: 'superuser, RLS bypassed, tenant predicate written out',
            samples: pages.baseline,
          },
          target: {
            text: '≤ 10 % overhead',
            met: overhead <= 0.1,
          },
          method:
            `Each round runs ${queries} page queries one after another, each for a random tenant ` +
            'after a random code, and keeps their median. Subject: withTenantTransaction ' +
            '(app.tenant_id, search path, SET ROLE to the tenant role) as the application role. ' +
            'Baseline: the same transaction machinery as the superuser (transactionWithSettings, ' +
            'which withTenantTransaction is built on: one round trip begins the transaction and ' +
            'applies its settings), setting only the search path, the query with `tenant_id = $2` ' +
            'written out (what the policy adds, so the plan is the same). Both run the page query ' +
            'through sequelize.query over a loopback pool of 2 connections.',
          details: { 'measured overhead': `${(overhead * 100).toFixed(1)} %` },
        },
        {
          id: 'tenant-provisioning',
          issue: 3,
          title: 'Provisioning one tenant',
          unit: 'ms',
          better: 'lower',
          subject: { label: 'provision(): schema, role, RLS, migrations', samples: provisioning },
          target: { text: '< 500 ms', met: summarize(provisioning).median < 500 },
          method:
            `provision() of the migrations library (what the operator and the CLI call), timed ` +
            `for each of the ${tenantCount} tenants, one after another, into one database. ` +
            'There is no baseline: nothing else in the platform creates a tenant.',
        },
        {
          id: 'tenants-up-all',
          issue: 3,
          title: `tenants up --all for ${tenantCount} provisioned tenants`,
          unit: 'ms',
          better: 'lower',
          subject: { label: '--concurrency 4', samples: migrateAll.subject },
          baseline: { label: '--concurrency 1', samples: migrateAll.baseline },
          method:
            'migrateAllTenants() (what `vextrus-migrate tenants up --all` runs), in process, ' +
            'over tenants that are already at the latest migration: the time to lock, check and ' +
            'confirm every tenant. No target was set.',
        },
      ];
    } finally {
      await app.close();
      await superuser.close();
      await plane.close();
    }
  },
};
