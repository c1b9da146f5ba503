/**
 * Issue 6: what the audit record adds to a mutation, and reading one day of a tenant's audit
 * log that holds 1,000,000 records.
 */
import { createPlane } from '@vextrus/devkit';
import { provision, seedOrganization, type ProvisionResult } from '@vextrus/migrations';
import { recordAudit, withTenantTransaction } from '@vextrus/shared';
import { QueryTypes, Sequelize } from 'sequelize';
import { interleave, type Benchmark } from '../harness.js';
import { msSince, summarize } from '../stats.js';

const DAYS = 100;
const DAY_MS = 86_400_000;

const UPDATE = `UPDATE organizations SET display_name = $1, version = version + 1, updated_at = now()
  WHERE code = 'BENCH' RETURNING id, display_name, version`;

/** The same columns the /audit route returns, for the records of one day. */
const ONE_DAY = `SELECT sequence, id, occurred_at, actor_user_id, actor_roles, action, resource_type,
  resource_id, outcome, changes, details FROM audit_events
  WHERE occurred_at >= $1 AND occurred_at < $2 ORDER BY occurred_at, sequence`;

/** The median of `count` runs of `fn`, one after another, in milliseconds. */
async function medianOf(count: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await fn(i);
    latencies.push(msSince(started));
  }
  return summarize(latencies).median;
}

/**
 * Appends `count` records spread evenly over DAYS days ending now, through the insert trigger
 * (sequence and hash chain), in batches so that no transaction grows too large.
 */
async function fillAuditLog(app: Sequelize, tenant: ProvisionResult, count: number): Promise<Date> {
  const start = new Date(Date.now() - DAYS * DAY_MS);
  const step = (DAYS * DAY_MS) / count;
  const batch = 50_000;
  for (let first = 0; first < count; first += batch) {
    const last = Math.min(count, first + batch) - 1;
    await withTenantTransaction(app, tenant, () =>
      app.query(
        `INSERT INTO audit_events (occurred_at, actor_system, action, resource_type, resource_id,
           outcome, changes)
         SELECT $1::timestamptz + make_interval(secs => g * $2::float8 / 1000), 'bench',
                'organization.updated', 'organization', 'ORG-' || g, 'success',
                jsonb_build_object('after', jsonb_build_object('displayName', 'Org ' || g))
         FROM generate_series($3::int, $4::int) AS g`,
        { bind: [start.toISOString(), step, first, last] },
      ),
    );
  }
  return start;
}

export const audit: Benchmark = {
  name: 'audit',
  issue: 6,
  async run({ settings, log }) {
    const records = settings.smoke ? 5_000 : 1_000_000;
    const mutations = settings.smoke ? 20 : 200;
    const plane = await createPlane('bench_audit');
    const app = new Sequelize(plane.appUrl, { logging: false, pool: { max: 2 } });
    const superuser = new Sequelize(plane.database.url, { logging: false, pool: { max: 2 } });
    try {
      const tenant = await provision(plane.db, 'bench');
      await seedOrganization(plane.db, 'bench', { name: 'Bench Group', code: 'BENCH' });

      log('audit: a mutation with vs. without its audit record');
      const mutate = (withRecord: boolean) => (i: number) =>
        withTenantTransaction(app, tenant, async () => {
          const [row] = await app.query<{ id: string }>(UPDATE, {
            bind: [`Bench Group ${i}`],
            type: QueryTypes.SELECT,
          });
          if (!row) throw new Error('the organization to update is missing');
          if (withRecord) {
            await recordAudit({
              action: 'organization.updated',
              outcome: 'success',
              resourceType: 'organization',
              resourceId: row.id,
              actor: { system: 'bench' },
              changes: { before: { displayName: 'x' }, after: { displayName: `Bench Group ${i}` } },
            });
          }
        });
      await medianOf(20, mutate(true));
      await medianOf(20, mutate(false));
      const latency = await interleave(
        settings.rounds,
        () => medianOf(mutations, mutate(true)),
        () => medianOf(mutations, mutate(false)),
      );
      const extra = summarize(latency.subject).median / summarize(latency.baseline).median - 1;

      log(`audit: ${records} records in the tenant's audit log`);
      // A tenant of its own: the chain keeps time moving forward, so backdated records can only
      // go into a log that has no record yet.
      const logTenant = await provision(plane.db, 'benchlog');
      const start = await fillAuditLog(app, logTenant, records);
      await superuser.query(`ANALYZE "${logTenant.schema}".audit_events`);
      const readDay = (through: 'tenant' | 'superuser') => async () => {
        const day = Math.floor(Math.random() * (DAYS - 1));
        const from = new Date(start.getTime() + day * DAY_MS).toISOString();
        const to = new Date(start.getTime() + (day + 1) * DAY_MS).toISOString();
        const rows =
          through === 'tenant'
            ? await withTenantTransaction(app, logTenant, () =>
                app.query(ONE_DAY, { bind: [from, to], type: QueryTypes.SELECT }),
              )
            : await superuser.query(
                ONE_DAY.replace('FROM audit_events', `FROM "${logTenant.schema}".audit_events`),
                { bind: [from, to], type: QueryTypes.SELECT },
              );
        if (rows.length === 0) throw new Error('one day of the audit log came back empty');
      };
      const queries = settings.smoke ? 3 : 10;
      const day = await interleave(
        settings.rounds,
        () => medianOf(queries, readDay('tenant')),
        () => medianOf(queries, readDay('superuser')),
      );

      return [
        {
          id: 'audit-mutation',
          issue: 6,
          title: 'A mutation with vs. without its audit record',
          unit: 'ms (median per mutation)',
          better: 'lower',
          subject: {
            label: 'UPDATE + recordAudit in one tenant transaction',
            samples: latency.subject,
          },
          baseline: { label: 'the same UPDATE alone', samples: latency.baseline },
          target: { text: '≤ 15 % extra', met: extra <= 0.15 },
          method:
            `Each round makes ${mutations} updates of one organization one after another, each ` +
            'in its own withTenantTransaction as the application role, and keeps their median; ' +
            'the subject also appends the audit record (insert trigger: sequence and hash chain).',
          details: { 'measured extra': `${(extra * 100).toFixed(1)} %` },
        },
        {
          id: 'audit-one-day',
          issue: 6,
          title: `One day out of ${records.toLocaleString('en-US')} audit records`,
          unit: 'ms (median per query)',
          better: 'lower',
          subject: { label: 'tenant transaction, forced RLS', samples: day.subject },
          baseline: { label: 'superuser, RLS bypassed', samples: day.baseline },
          target: { text: '< 50 ms', met: summarize(day.subject).median < 50 },
          method:
            `${records.toLocaleString('en-US')} records spread evenly over ${DAYS} days ` +
            `(about ${Math.round(records / DAYS).toLocaleString('en-US')} a day); each round ` +
            `reads every record of ${queries} random days (the /audit columns, ordered) and ` +
            'keeps the median.',
        },
      ];
    } finally {
      await app.close();
      await superuser.close();
      await plane.close();
    }
  },
};
