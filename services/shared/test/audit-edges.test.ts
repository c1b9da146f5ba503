import { request, type ClientRequest } from 'node:http';
import { expect } from 'chai';
import pg from 'pg';
import { EVENT_COLUMNS, formatEvent } from '../src/audit/query.js';
import {
  recordAuditSeparately,
  transactionTextRows,
  withTenantTransaction,
  type RunningService,
} from '@vextrus/shared';
import {
  createAuditPlane,
  createTokenMint,
  settled,
  startAuditService,
  type AuditPlane,
  type TokenMint,
} from './audit-support.js';

const RECORDS = 60_000;
const BATCH = 2_000;

describe('audit API edges: the export when the client goes away, odd times and ranges', function () {
  this.timeout(120_000);
  let t: AuditPlane;
  let mint: TokenMint;
  let service: RunningService;
  let headers: Record<string, string>;

  before(async () => {
    t = await createAuditPlane('audit_edges', ['bulk', 'old', 'odd']);
    mint = createTokenMint();
    service = await startAuditService(t, mint, { exportBatchSize: BATCH });
    headers = {
      Authorization: `Bearer ${mint.token(t.tenants.bulk!, ['auditor'])}`,
      'X-Tenant-ID': 'bulk',
    };
    // Export-only data, as in audit-export.test.ts: triggers off, zero hashes.
    await t.superuser(`
      SET session_replication_role = replica;
      INSERT INTO ${t.tenants.bulk!.schema}.audit_events
        (tenant_id, sequence, occurred_at, actor_user_id, actor_roles, action, outcome, changes,
         previous_hash, hash)
      SELECT '${t.tenants.bulk!.tenantId}', g, now() - interval '1 day' + g * interval '1 ms',
             'user-' || (g % 50), '{tenant_admin}', 'organization.updated', 'success',
             jsonb_build_object('after', jsonb_build_object('name', repeat('x', 200) || g)),
             decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')
        FROM generate_series(1, ${RECORDS}) g;
      INSERT INTO ${t.tenants.bulk!.schema}.audit_chain (tenant_id, head_sequence, head_at)
      VALUES ('${t.tenants.bulk!.tenantId}', ${RECORDS}, now());
      ANALYZE ${t.tenants.bulk!.schema}.audit_events;
    `);
  });
  after(async () => {
    await service.stop();
    await t.close();
  });

  /**
   * Starts an export and destroys the connection `delayMs` after the request went out (before
   * or after the first byte, while a batch is on its way from PostgreSQL).
   */
  function abandonedExport(delayMs: number): Promise<void> {
    return new Promise((resolve) => {
      const req = request(`${service.url}/audit/events/export`, { headers });
      req.on('error', () => resolve());
      req.on('response', (res) => {
        res.on('error', () => resolve());
        res.on('close', () => resolve());
        res.resume();
      });
      req.end();
      setTimeout(() => {
        req.destroy();
        resolve();
      }, delayMs);
    });
  }

  it('when clients go away at any moment of an export, no session stays in a transaction', async () => {
    const delays = [0, 1, 3, 5, 8, 12, 20, 30, 45, 60, 80, 120, 160, 220, 300];
    for (const delay of delays) await abandonedExport(delay);
    expect(await settled(t), 'sessions still in a transaction').to.equal(0);
    // The service still answers an export in full.
    const again = await fetch(`${service.url}/audit/events/export`, { headers });
    const text = await again.text();
    expect(again.status).to.equal(200);
    expect(text.split('\n').filter((line) => line.length > 0)).to.have.length(RECORDS);
  });

  it('when the client goes away while a batch is on its way, its transaction still ends', async () => {
    // The table is locked so that the export's first batch waits in PostgreSQL while the client
    // goes away; the lock is let go once the connection is closed.
    const pg = await import('pg');
    const locker = new pg.default.Client({ connectionString: t.plane.database.url });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(
        `LOCK TABLE ${t.tenants.bulk!.schema}.audit_events IN ACCESS EXCLUSIVE MODE`,
      );
      const req = request(`${service.url}/audit/events/export`, { headers });
      req.on('error', () => undefined);
      req.end();
      await new Promise((resolve) => setTimeout(resolve, 300));
      req.destroy();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await locker.query('COMMIT');
    } finally {
      await locker.end();
    }
    expect(await settled(t), 'sessions still in a transaction').to.equal(0);
  });

  it('when records are dated far in the past, occurredAt is the exact instant', async () => {
    const old = t.tenants.old!;
    // Written through the chain trigger (which lets an import date a tenant's first records in
    // the past, never backwards), oldest first.
    const times = [
      '0044-03-15 12:00:00.000001+00 BC',
      '0001-01-01 00:00:00+00',
      '0999-12-31 23:59:59.999999+00',
      '1500-03-01 12:00:00.123457+00',
      '1969-12-31 23:59:59.999999+00',
    ];
    for (const at of times) {
      await withTenantTransaction(t.app, old, (transaction) =>
        t.app.query(
          `INSERT INTO audit_events (occurred_at, actor_system, action, outcome)
           VALUES ($1, 'importer', 'import.done', 'success')`,
          { transaction, bind: [at] },
        ),
      );
    }
    const response = await fetch(`${service.url}/audit/events/export`, {
      headers: {
        Authorization: `Bearer ${mint.token(old, ['auditor'])}`,
        'X-Tenant-ID': 'old',
      },
    });
    expect(response.status).to.equal(200);
    const items = (await response.text())
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as { occurredAt: string });
    expect(items.map((item) => item.occurredAt)).to.deep.equal([
      // ISO 8601 expanded years for years before 1 (astronomical numbering: 44 BC is -43).
      '-000043-03-15T12:00:00.000001Z',
      '0001-01-01T00:00:00.000000Z',
      '0999-12-31T23:59:59.999999Z',
      '1500-03-01T12:00:00.123457Z',
      '1969-12-31T23:59:59.999999Z',
    ]);
  });

  it('when from or to is a valid ISO time PostgreSQL cannot hold, the answer is 400', async () => {
    const params = ['from', 'to'].flatMap((name) =>
      ['0000-01-01T00:00:00Z', '2026-01-01T00:00:00+20:00', '2026-01-01T00:00:00-16:00'].map(
        (value) => `${name}=${encodeURIComponent(value)}`,
      ),
    );
    for (const param of params) {
      for (const path of ['/audit/events', '/audit/events/export']) {
        const response = await fetch(`${service.url}${path}?${param}`, { headers });
        expect(response.status, `${path}?${param}`).to.equal(400);
        expect(response.headers.get('content-type')).to.match(/problem\+json/);
      }
    }
  });

  it('when the sessions have odd DateStyle, TimeZone and output settings, the API writes the same', async () => {
    const url = new URL(t.plane.appUrl);
    url.searchParams.set(
      'options',
      '-c TimeZone=Pacific/Chatham -c DateStyle=SQL,DMY -c IntervalStyle=sql_standard ' +
        '-c extra_float_digits=-15 -c bytea_output=escape',
    );
    const odd = await startAuditService(t, mint, { databaseUrl: url.toString() });
    try {
      // The URL's options reach the sessions (as they reach the service's own pool).
      const probe = new pg.Client({ connectionString: url.toString() });
      await probe.connect();
      const { rows } = await probe.query(
        `SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds`,
      );
      await probe.end();
      expect(rows[0]).to.deep.equal({ tz: 'Pacific/Chatham', ds: 'SQL, DMY' });
      const oldHeaders = {
        Authorization: `Bearer ${mint.token(t.tenants.old!, ['auditor'])}`,
        'X-Tenant-ID': 'old',
      };
      const paths = [
        '/audit/events/export',
        '/audit/events?limit=3',
        `/audit/events?from=${encodeURIComponent('1500-03-01T12:00:00.123457+13:45')}`,
        `/audit/events/export?to=${encodeURIComponent('1000-01-01T00:00:00Z')}`,
      ];
      for (const path of paths) {
        const [plain, other] = await Promise.all(
          [service, odd].map((s) => fetch(`${s.url}${path}`, { headers: oldHeaders })),
        );
        expect(other!.status, path).to.equal(200);
        expect(await other!.text(), path).to.equal(await plain!.text());
      }
    } finally {
      await odd.stop();
    }
  });

  it('when records hold odd arrays, control characters and precise numbers, the JSON is exact', async () => {
    const odd = t.tenants.odd!;
    const controls = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('');
    const text = `${controls}\u007f\u0085\u00a0\u2028\u2029\ufeff\ud83c\udfd7"\\/`;
    await t.superuser(
      `SET session_replication_role = replica;
       INSERT INTO ${odd.schema}.audit_events (tenant_id, sequence, actor_user_id, actor_roles,
         action, outcome, changes, details, previous_hash, hash)
       VALUES
         ('${odd.tenantId}', 1, 'u', '{NULL,"NULL","",",","{}","\\\\"," a "}',
          'x.y', 'success',
          '{"big": 1e400, "precise": 0.10000000000000000000000000001, "neg": -0.0,
            "esc": "\\u0001\\u2028\\ud83c\\udfd7", "k\\"ey": [1.5e-30, 12345678901234567890]}',
          NULL, sha256('a'), sha256('b')),
         ('${odd.tenantId}', 2, NULL, '{{a,b},{c,d}}', 'x.y', 'failure', '{}', '{"t": true}',
          sha256('b'), sha256('c')),
         ('${odd.tenantId}', 3, NULL, '[0:1]={a,b}', 'x.y', 'denied', NULL, NULL,
          sha256('c'), sha256('d'));
       INSERT INTO ${odd.schema}.audit_chain (tenant_id, head_sequence) VALUES ('${odd.tenantId}', 3);`,
    );
    const client = new pg.Client({ connectionString: t.plane.database.url });
    await client.connect();
    try {
      await client.query('SET session_replication_role = replica');
      await client.query(
        `UPDATE ${odd.schema}.audit_events SET user_agent = $1, resource_id = $1 WHERE sequence = 1`,
        [text],
      );
    } finally {
      await client.end();
    }
    const [rows, reference] = await withTenantTransaction(t.app, odd, async (transaction) => [
      await transactionTextRows(
        t.app,
        transaction,
        `SELECT ${EVENT_COLUMNS} FROM audit_events e ORDER BY e.sequence`,
      ),
      await transactionTextRows(
        t.app,
        transaction,
        `SELECT to_json(e.actor_roles)::text, e.changes::text, e.details::text,
                to_json(e.user_agent)::text
           FROM audit_events e ORDER BY e.sequence`,
      ),
    ]);
    expect(rows).to.have.length(3);
    for (const [i, row] of rows.entries()) {
      const line = formatEvent(row);
      expect(line).not.to.include('\n');
      const item = JSON.parse(line) as Record<string, unknown> & { actor: { roles: unknown } };
      const [roles, changes, details, agent] = reference[i]!;
      expect(item.actor.roles, `roles of ${i + 1}`).to.deep.equal(JSON.parse(roles!));
      expect(item.changes).to.deep.equal(changes === null ? null : JSON.parse(changes!));
      expect(item.details).to.deep.equal(details === null ? null : JSON.parse(details!));
      expect(item.userAgent).to.deep.equal(JSON.parse(agent!));
    }
    const first = formatEvent(rows[0]!);
    // The numbers go out as PostgreSQL stored them, digit for digit.
    expect(first).to.include('0.10000000000000000000000000001');
    expect(first).to.include('12345678901234567890');
    const parsed = JSON.parse(first) as { userAgent: string; actor: { roles: unknown } };
    expect(parsed.userAgent).to.equal(text);
    expect(parsed.actor.roles).to.deep.equal([null, 'NULL', '', ',', '{}', '\\', ' a ']);
  });

  it('when limit, cursor and tenant headers are at their edges, no answer is a 500', async () => {
    const expectations: [string, number][] = [
      ['limit=200', 200],
      ['limit=1e2', 200],
      ['limit=201', 400],
      ['limit=0', 400],
      ['limit=-1', 400],
      ['limit=1.5', 400],
      ['limit=', 400],
      ['limit=1&limit=2', 400],
      ['actor=a&actor=b', 400],
      ['actor[x]=1', 400],
      [`cursor=${Buffer.from('s999999999999999999').toString('base64url')}`, 200],
      [`cursor=${Buffer.from('s9999999999999999999').toString('base64url')}`, 400],
      [`cursor=${Buffer.from('s0').toString('base64url')}`, 400],
      ['cursor=%00', 400],
      ['cursor=', 400],
    ];
    for (const [query, status] of expectations) {
      const response = await fetch(`${service.url}/audit/events?${query}`, { headers });
      expect(response.status, query).to.equal(status);
    }
    // A cursor is only a position: one from another tenant pages this tenant's records.
    const oldHeaders = {
      Authorization: `Bearer ${mint.token(t.tenants.old!, ['auditor'])}`,
      'X-Tenant-ID': 'old',
    };
    const cursor = Buffer.from(`s${RECORDS}`).toString('base64url');
    const page = (await (
      await fetch(`${service.url}/audit/events?limit=2&cursor=${cursor}`, { headers: oldHeaders })
    ).json()) as { items: { sequence: number }[] };
    expect(page.items.map((item) => item.sequence)).to.deep.equal([5, 4]);
    // A token of one tenant with another tenant's header is refused, on /events and the export.
    for (const path of ['/audit/events', '/audit/events/export']) {
      const response = await fetch(`${service.url}${path}`, {
        headers: { ...headers, 'X-Tenant-ID': 'old' },
      });
      expect(response.status, path).to.equal(403);
    }
  });

  it('when records are written during concurrent exports, each export is one gapless snapshot', async () => {
    const bulk = t.tenants.bulk!;
    let writing = true;
    const writer = (async () => {
      let written = 0;
      while (writing) {
        await recordAuditSeparately(t.app, bulk, {
          action: 'organization.updated',
          outcome: 'success',
          actor: { system: 'race' },
        });
        written += 1;
      }
      return written;
    })();
    const texts = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const response = await fetch(`${service.url}/audit/events/export`, { headers });
        expect(response.status).to.equal(200);
        return response.text();
      }),
    );
    writing = false;
    expect(await writer).to.be.greaterThan(0);
    for (const text of texts) {
      expect(text.endsWith('\n')).to.equal(true);
      const sequences = text
        .slice(0, -1)
        .split('\n')
        .map((line) => (JSON.parse(line) as { sequence: number }).sequence);
      expect(sequences.length).to.be.at.least(RECORDS);
      expect(sequences.every((sequence, i) => sequence === i + 1)).to.equal(true);
    }
    expect(await settled(t), 'sessions still in a transaction').to.equal(0);
  });

  describe('exports whose clients do not read', () => {
    const POOL = 4;
    let small: RunningService;

    before(async () => {
      small = await startAuditService(t, mint, {
        exportBatchSize: BATCH,
        exportStallMs: 1_500,
        lockWaitMs: 500,
        poolMax: POOL,
      });
    });
    after(() => small.stop());

    /** Starts an export whose client reads the status and then nothing more. */
    function stalledExport(): Promise<{ status: number; req: ClientRequest }> {
      return new Promise((resolve, reject) => {
        const req = request(`${small.url}/audit/events/export`, { headers });
        req.on('error', () => undefined);
        req.on('response', (res) => {
          res.on('error', () => undefined);
          // A refusal is read in full; an export is not read at all.
          if (res.statusCode === 200) res.pause();
          else res.resume();
          resolve({ status: res.statusCode ?? 0, req });
        });
        req.on('error', reject);
        req.end();
      });
    }

    it('when as many exports as the pool has connections stall, the API still answers', async () => {
      const exports = await Promise.all(Array.from({ length: POOL }, () => stalledExport()));
      const statuses = exports.map((e) => e.status).sort();
      // At most half the pool exports at once; the others are told to come back later.
      expect(statuses).to.deep.equal([200, 200, 503, 503]);
      const began = Date.now();
      const page = await fetch(`${small.url}/audit/events?limit=1`, { headers });
      expect(page.status).to.equal(200);
      expect(Date.now() - began).to.be.lessThan(2_000);
      // A client that takes nothing for exportStallMs is cut off, and its transaction ends.
      // A client that takes nothing for exportStallMs is cut off, and its transaction ends (a
      // paused client socket does not notice, so the service's sessions tell).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(await settled(t), 'sessions still in a transaction').to.equal(0);
      for (const e of exports) e.req.destroy();
      // Once they are done, exports are taken again.
      const again = await fetch(
        `${small.url}/audit/events/export?from=${encodeURIComponent(new Date().toISOString())}`,
        { headers },
      );
      expect(again.status).to.equal(200);
      expect(await again.text()).to.equal('');
    });

    it('when the audit table is locked by other work, an export answers 503 instead of waiting', async () => {
      const owner = new pg.Client({ connectionString: t.plane.database.url });
      await owner.connect();
      try {
        await owner.query('BEGIN');
        await owner.query(
          `LOCK TABLE ${t.tenants.bulk!.schema}.audit_events IN ACCESS EXCLUSIVE MODE`,
        );
        const began = Date.now();
        const locked = await fetch(`${small.url}/audit/events/export`, { headers });
        const body = (await locked.json()) as { code?: string };
        expect(locked.status).to.equal(503);
        expect(locked.headers.get('content-type')).to.contain('application/problem+json');
        // Not offered as a download: the answer is a problem, not an export.
        expect(locked.headers.get('content-disposition')).to.equal(null);
        expect(locked.headers.get('retry-after')).to.equal('5');
        expect(body.code).to.equal('UNAVAILABLE');
        expect(Date.now() - began).to.be.lessThan(5_000);
        // The export's session gave up and ended its transaction (the owner's is not counted).
        expect(await settled(t), 'sessions still in a transaction').to.equal(0);
      } finally {
        await owner.query('ROLLBACK');
        await owner.end();
      }
      const free = await fetch(`${small.url}/audit/events/export`, { headers });
      expect(free.status).to.equal(200);
      await free.body?.cancel();
    });
  });
});
