import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect } from 'chai';
import {
  recordAudit,
  withTenantTransaction,
  type RunningService,
  type TenantContext,
} from '@vextrus/shared';
import {
  createAuditPlane,
  createTokenMint,
  startAuditService,
  type AuditPlane,
  type TokenMint,
} from './audit-support.js';

const RECORDS = 1_000_000;
const DAYS = 365;
const MB = 1024 * 1024;

/** A full collection, so that heapUsed measures what is still alive rather than garbage. */
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

function liveHeap(): number {
  collect();
  return process.memoryUsage().heapUsed;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

describe('audit export at scale', function () {
  this.timeout(120_000);
  let t: AuditPlane;
  let mint: TokenMint;
  let service: RunningService;
  const start = Date.now() - DAYS * 86_400_000;

  before(async () => {
    t = await createAuditPlane('audit_export', ['bulk', 'bench']);
    mint = createTokenMint();
    service = await startAuditService(t, mint);
    // Export-only data: inserted by the superuser with triggers off, one year of records in one
    // statement, sequence numbers without gaps but zero hashes (the chain does not verify). The
    // secondary indexes are built after the rows, which is several times faster than row by row.
    const schema = t.tenants.bulk!.schema;
    const { rows: indexes } = await t.superuser(
      `SELECT indexname, indexdef FROM pg_indexes
        WHERE schemaname = $1 AND tablename = 'audit_events'
          AND indexname NOT IN ('audit_events_pkey', 'audit_events_id_key')`,
      [schema],
    );
    await t.superuser(
      indexes.map((i: { indexname: string }) => `DROP INDEX ${schema}.${i.indexname};`).join(''),
    );
    await t.superuser(`
      SET session_replication_role = replica;
      SET maintenance_work_mem = '256MB';
      INSERT INTO ${t.tenants.bulk!.schema}.audit_events
        (tenant_id, sequence, occurred_at, actor_user_id, actor_roles, client_address,
         user_agent, request_id, action, resource_type, resource_id, outcome, changes,
         previous_hash, hash)
      SELECT '${t.tenants.bulk!.tenantId}', g,
             to_timestamp(${start / 1000}) + g * interval '${(DAYS * 86_400) / RECORDS} seconds',
             'user-' || (g % 50), '{tenant_admin}', '203.0.113.7', 'erp-test/1.0', 'req-' || g,
             'organization.updated', 'organization', 'org-' || (g % 1000), 'success',
             jsonb_build_object('before', jsonb_build_object('name', 'Old ' || g),
                                'after', jsonb_build_object('name', 'New ' || g)),
             decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')
        FROM generate_series(1, ${RECORDS}) g;
    `);
    await t.superuser(
      `SET maintenance_work_mem = '256MB';` +
        indexes.map((i: { indexdef: string }) => `${i.indexdef};`).join('') +
        `ANALYZE ${schema}.audit_events;`,
    );
  });
  after(async () => {
    await service.stop();
    await t.close();
  });

  it('when 1,000,000 records are exported, they stream as NDJSON with flat memory', async () => {
    const baseline = liveHeap();
    const samples: number[] = [];
    let lines = 0;
    let bytes = 0;
    let sampledAt = 0;

    const response = await fetch(`${service.url}/audit/events/export`, {
      headers: {
        Authorization: `Bearer ${mint.token(t.tenants.bulk!, ['auditor'])}`,
        'X-Tenant-ID': 'bulk',
      },
    });
    expect(response.status).to.equal(200);
    const body = Readable.fromWeb(response.body as never) as AsyncIterable<Buffer>;
    for await (const value of body) {
      bytes += value.length;
      for (let at = value.indexOf(10); at !== -1; at = value.indexOf(10, at + 1)) lines += 1;
      if (bytes - sampledAt > 20 * MB) {
        samples.push(liveHeap() - baseline);
        sampledAt = bytes;
      }
    }

    const peak = Math.max(...samples);
    console.log(
      `      export: ${lines} lines, ${(bytes / MB).toFixed(0)} MB, ${samples.length} samples, ` +
        `live heap growth at most ${(peak / MB).toFixed(1)} MB`,
    );
    expect(lines).to.equal(RECORDS);
    expect(samples.length).to.be.greaterThan(10);
    // Everything at once would be several hundred MB; a batch of 5,000 lines is a few MB.
    expect(peak).to.be.lessThan(48 * MB);
  });

  it('reports the time to query one day out of 1,000,000 records (benchmark, not asserted)', async () => {
    const token = mint.token(t.tenants.bulk!, ['auditor']);
    const times: number[] = [];
    let count = 0;

    for (let day = 10; day < 360; day += 35) {
      const from = new Date(start + day * 86_400_000).toISOString();
      const to = new Date(start + (day + 1) * 86_400_000).toISOString();
      const began = performance.now();
      const response = await fetch(
        `${service.url}/audit/events?from=${from}&to=${to}&actor=user-7&limit=200`,
        { headers: { Authorization: `Bearer ${token}`, 'X-Tenant-ID': 'bulk' } },
      );
      const body = (await response.json()) as { items: unknown[] };
      times.push(performance.now() - began);
      count = body.items.length;
    }

    console.log(
      `      one day of ${RECORDS} records, one actor, first page: median ` +
        `${median(times).toFixed(1)} ms over ${times.length} days (HTTP round trip included)`,
    );
    expect(count).to.be.greaterThan(0);
  });

  it('reports the latency of a mutation with and without its audit record (benchmark)', async () => {
    const bench: TenantContext = t.tenants.bench!;
    const mutate = (audited: boolean) =>
      withTenantTransaction(t.app, bench, async () => {
        const code = randomUUID().slice(0, 8);
        await t.app.query(
          `INSERT INTO organizations (code, legal_name, display_name, country, currency, time_zone)
           VALUES ($1, $1, $1, 'BD', 'BDT', 'Asia/Dhaka')`,
          { bind: [code] },
        );
        if (audited) {
          await recordAudit({
            action: 'organization.created',
            outcome: 'success',
            resourceType: 'organization',
            resourceId: code,
            changes: { after: { code, legalName: code } },
          });
        }
      });
    const run = async (audited: boolean): Promise<number[]> => {
      const times: number[] = [];
      for (let i = 0; i < 300; i++) {
        const began = performance.now();
        await mutate(audited);
        times.push(performance.now() - began);
      }
      return times;
    };
    await run(true);
    await run(false);

    const plain = median(await run(false));
    const audited = median(await run(true));

    console.log(
      `      mutation median: ${plain.toFixed(2)} ms without, ${audited.toFixed(2)} ms with ` +
        `its audit record (+${(((audited - plain) / plain) * 100).toFixed(0)}%)`,
    );
    expect(audited).to.be.greaterThan(0);
  });
});
