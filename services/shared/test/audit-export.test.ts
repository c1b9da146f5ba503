import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect } from 'chai';
import type { RunningService } from '@vextrus/shared';
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

describe('audit export at scale', function () {
  this.timeout(120_000);
  let t: AuditPlane;
  let mint: TokenMint;
  let service: RunningService;
  const start = Date.now() - DAYS * 86_400_000;

  before(async () => {
    t = await createAuditPlane('audit_export', ['bulk']);
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

  it('when the client goes away in the middle of an export, the service stays well', async () => {
    const headers = {
      Authorization: `Bearer ${mint.token(t.tenants.bulk!, ['auditor'])}`,
      'X-Tenant-ID': 'bulk',
    };
    const abort = new AbortController();
    const response = await fetch(`${service.url}/audit/events/export`, {
      headers,
      signal: abort.signal,
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(first.value?.length ?? 0).to.be.greaterThan(0);
    abort.abort();
    await reader.read().catch(() => undefined);

    // The export's transaction ends (no session of the application role stays inside a
    // transaction), and the service answers the next export in full.
    let busy = -1;
    for (let tries = 0; tries < 100 && busy !== 0; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const { rows } = await t.superuser(
        `SELECT count(*)::int AS busy FROM pg_stat_activity
          WHERE datname = current_database() AND usename <> current_user
            AND state IN ('active', 'idle in transaction')`,
      );
      busy = (rows[0] as { busy: number }).busy;
    }
    expect(busy, 'sessions still in a transaction').to.equal(0);
    const from = new Date(start + 100 * 86_400_000).toISOString();
    const to = new Date(start + 101 * 86_400_000).toISOString();
    const again = await fetch(`${service.url}/audit/events/export?from=${from}&to=${to}`, {
      headers,
    });
    const lines = (await again.text()).split('\n').filter((line) => line.length > 0);
    expect(again.status).to.equal(200);
    expect(lines.length).to.be.within(RECORDS / DAYS - 2, RECORDS / DAYS + 2);
    expect(JSON.parse(lines[0]!)).to.include.keys('sequence', 'occurredAt', 'hash');
  });
});
