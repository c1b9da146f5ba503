import { expect } from 'chai';
import pg from 'pg';
import { recordAuditSeparately, type RunningService } from '@vextrus/shared';
import {
  createAuditPlane,
  createTokenMint,
  settled,
  startAuditService,
  type AuditPlane,
  type TokenMint,
} from './audit-support.js';

describe('audit API under a careless or hostile client: methods, locks, a busy pool', function () {
  this.timeout(60_000);
  let t: AuditPlane;
  let mint: TokenMint;
  let service: RunningService;
  let headers: Record<string, string>;

  before(async () => {
    t = await createAuditPlane('audit_api_break', ['acme']);
    mint = createTokenMint();
    service = await startAuditService(t, mint, { lockWaitMs: 500 });
    headers = {
      Authorization: `Bearer ${mint.token(t.tenants.acme!, ['auditor'])}`,
      'X-Tenant-ID': 'acme',
    };
    for (let i = 0; i < 3; i++) {
      await recordAuditSeparately(t.app, t.tenants.acme!, { action: 'x.y', outcome: 'success' });
    }
  });
  after(async () => {
    await service.stop();
    await t.close();
  });

  /** Runs fn while the owner holds the tenant's audit table locked against every reader. */
  async function whileLocked(fn: () => Promise<void>): Promise<void> {
    const owner = new pg.Client({ connectionString: t.plane.database.url });
    await owner.connect();
    try {
      await owner.query('BEGIN');
      await owner.query(
        `LOCK TABLE ${t.tenants.acme!.schema}.audit_events IN ACCESS EXCLUSIVE MODE`,
      );
      await fn();
    } finally {
      await owner.query('ROLLBACK');
      await owner.end();
    }
  }

  it('when a path of the audit API is asked with another method than GET, it answers 405 with Allow', async () => {
    for (const path of ['/audit/events', '/audit/events/export', '/audit/verify']) {
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
        const response = await fetch(`${service.url}${path}`, { method, headers });
        const body = (await response.json()) as { code?: string };
        expect(response.status, `${method} ${path}`).to.equal(405);
        expect(response.headers.get('content-type')).to.contain('application/problem+json');
        expect(response.headers.get('allow'), `${method} ${path}`).to.equal('GET, HEAD');
        expect(body.code).to.equal('METHOD_NOT_ALLOWED');
      }
    }
    // A path the API does not have is still not found, and a caller without a token learns
    // nothing of the API's paths.
    const unknown = await fetch(`${service.url}/audit/nowhere`, { method: 'POST', headers });
    expect(unknown.status).to.equal(404);
    const anonymous = await fetch(`${service.url}/audit/events`, { method: 'POST' });
    expect(anonymous.status).to.equal(401);
  });

  it('when verify is given query parameters, it answers 400 naming them, as the other paths do', async () => {
    const response = await fetch(`${service.url}/audit/verify?from=2020-01-01T00:00:00Z&x=1`, {
      headers,
    });
    const body = (await response.json()) as { code?: string; errors?: { field: string }[] };
    expect(response.status).to.equal(400);
    expect(body.code).to.equal('VALIDATION_FAILED');
    expect(body.errors?.map((e) => e.field).sort()).to.deep.equal(['from', 'x']);
  });

  it('when the audit table is locked by other work, verify and events answer 503 instead of holding a connection', async () => {
    await whileLocked(async () => {
      for (const path of ['/audit/verify', '/audit/events']) {
        const began = Date.now();
        const response = await fetch(`${service.url}${path}`, {
          headers,
          signal: AbortSignal.timeout(8_000),
        });
        const body = (await response.json()) as { code?: string };
        expect(response.status, path).to.equal(503);
        expect(body.code, path).to.equal('UNAVAILABLE');
        expect(response.headers.get('retry-after'), path).to.equal('5');
        expect(Date.now() - began, path).to.be.lessThan(5_000);
      }
      expect(await settled(t), 'sessions still in a transaction').to.equal(0);
    });
  });

  it('when HEAD asks for the export or the verification, it answers their headers and reads no record', async () => {
    // With the table locked, any read would wait lockWaitMs and answer 503: a HEAD must not read
    // the whole log (a download manager asks HEAD before every GET).
    await whileLocked(async () => {
      const exported = await fetch(`${service.url}/audit/events/export`, {
        method: 'HEAD',
        headers,
      });
      expect(exported.status).to.equal(200);
      expect(exported.headers.get('content-type')).to.contain('application/x-ndjson');
      expect(exported.headers.get('content-disposition')).to.contain('audit-acme.ndjson');
      const verified = await fetch(`${service.url}/audit/verify`, { method: 'HEAD', headers });
      expect(verified.status).to.equal(200);
      expect(verified.headers.get('content-type')).to.contain('application/json');
      expect(await settled(t), 'sessions still in a transaction').to.equal(0);
    });
    // Its query is still checked.
    const invalid = await fetch(`${service.url}/audit/events/export?limit=1`, {
      method: 'HEAD',
      headers,
    });
    expect(invalid.status).to.equal(400);
  });

  it('when from or to has more decimals of a second than PostgreSQL parses, the answer is 400, not 500', async () => {
    for (const name of ['from', 'to']) {
      for (const path of ['/audit/events', '/audit/events/export']) {
        const value = `2020-01-01T00:00:00.${'9'.repeat(200)}Z`;
        const response = await fetch(`${service.url}${path}?${name}=${value}`, { headers });
        const body = (await response.json()) as { code?: string; errors?: { field: string }[] };
        expect(response.status, `${path} ${name}`).to.equal(400);
        expect(body.code).to.equal('VALIDATION_FAILED');
        expect(body.errors?.map((e) => e.field)).to.deep.equal([name]);
      }
    }
    // Nanoseconds still go (PostgreSQL rounds them to microseconds).
    const nanos = await fetch(`${service.url}/audit/events?from=2020-01-01T00:00:00.123456789Z`, {
      headers,
    });
    expect(nanos.status).to.equal(200);
  });

  it('when the tenant’s records are read, no answer may be stored by a cache', async () => {
    for (const path of ['/audit/events', '/audit/events/export', '/audit/verify']) {
      const response = await fetch(`${service.url}${path}`, { headers });
      await response.text();
      expect(response.status, path).to.equal(200);
      expect(response.headers.get('cache-control'), path).to.equal('no-store');
    }
  });

  it('when the tenant role is revoked while the directory still calls it active, every path answers TENANT_UNAVAILABLE', async () => {
    const cached = await startAuditService(t, mint, { directoryTtlMs: 60_000 });
    const login = new URL(t.plane.appUrl).username;
    try {
      expect((await fetch(`${cached.url}/audit/events?limit=1`, { headers })).status).to.equal(200);
      await t.superuser(`REVOKE ${t.tenants.acme!.role} FROM ${login}`);
      try {
        for (const path of ['/audit/events', '/audit/events/export', '/audit/verify']) {
          const response = await fetch(`${cached.url}${path}`, { headers });
          const body = (await response.json()) as { code?: string };
          expect([response.status, body.code], path).to.deep.equal([403, 'TENANT_UNAVAILABLE']);
        }
      } finally {
        await t.superuser(`GRANT ${t.tenants.acme!.role} TO ${login}`);
      }
    } finally {
      await cached.stop();
    }
  });

  describe('on a long chain', () => {
    let long: AuditPlane;
    let small: RunningService;
    let auth: Record<string, string>;

    before(async () => {
      // Long enough that one verification takes a while (it recomputes every hash).
      long = await createAuditPlane('audit_api_verify', ['long']);
      const tenant = long.tenants.long!;
      await long.superuser(
        `SELECT set_config('app.tenant_id', '${tenant.tenantId}', false);
         INSERT INTO ${tenant.schema}.audit_events (tenant_id, action, outcome)
         SELECT '${tenant.tenantId}', 'x.y', 'success' FROM generate_series(1, 40000)`,
      );
      small = await startAuditService(long, mint, { poolMax: 4 });
      auth = { Authorization: `Bearer ${mint.token(tenant, ['auditor'])}`, 'X-Tenant-ID': 'long' };
    });
    after(async () => {
      await small.stop();
      await long.close();
    });

    it('when many verifications run at once, they take at most half the pool and the API still answers', async () => {
      const verifications = Array.from({ length: 4 }, () =>
        fetch(`${small.url}/audit/verify`, { headers: auth }).then(async (response) => ({
          status: response.status,
          retryAfter: response.headers.get('retry-after'),
          body: (await response.json()) as { valid?: boolean; code?: string },
        })),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      const began = Date.now();
      const page = await fetch(`${small.url}/audit/events?limit=1`, { headers: auth });
      expect(page.status).to.equal(200);
      expect(Date.now() - began).to.be.lessThan(1_000);
      const answers = await Promise.all(verifications);
      expect(answers.map((a) => a.status).sort()).to.deep.equal([200, 200, 503, 503]);
      for (const answer of answers) {
        if (answer.status === 200) expect(answer.body.valid).to.equal(true);
        else expect([answer.body.code, answer.retryAfter]).to.deep.equal(['UNAVAILABLE', '30']);
      }
    });

    it('when the client of a verification goes away, the walk stops and its slot is free', async () => {
      const began = Date.now();
      const whole = await fetch(`${small.url}/audit/verify`, { headers: auth });
      expect(whole.status).to.equal(200);
      await whole.text();
      const walk = Date.now() - began;
      // Two clients give up early; were their walks to go on, the budget (two) would be spent.
      for (let i = 0; i < 2; i++) {
        await fetch(`${small.url}/audit/verify`, {
          headers: auth,
          signal: AbortSignal.timeout(100),
        }).catch(() => undefined);
      }
      const after = Date.now();
      expect(await settled(long), 'sessions still in a transaction').to.equal(0);
      expect(Date.now() - after, `a whole walk takes ${walk} ms`).to.be.lessThan(walk / 2);
      const again = await fetch(`${small.url}/audit/verify`, { headers: auth });
      expect(again.status).to.equal(200);
      await again.text();
    });
  });

  it('when every pooled connection is busy, verify answers 503 with Retry-After, not 500', async () => {
    // One connection, held by an export that waits for the locked table longer than the pool
    // lets a request wait for a connection.
    // The tenant directory keeps its entry, as in production, and the service lets two long
    // reads run, so that the request gets as far as the verification before it needs a
    // connection.
    const single = await startAuditService(t, mint, {
      poolMax: 1,
      maxConcurrentLongReads: 2,
      lockWaitMs: 30_000,
      directoryTtlMs: 60_000,
    });
    try {
      expect((await fetch(`${single.url}/audit/events?limit=1`, { headers })).status).to.equal(200);
      await whileLocked(async () => {
        const holder = fetch(`${single.url}/audit/events/export`, { headers }).catch(() => null);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const response = await fetch(`${single.url}/audit/verify`, { headers });
        const body = (await response.json()) as { code?: string };
        expect(response.status).to.equal(503);
        expect(body.code).to.equal('UNAVAILABLE');
        expect(response.headers.get('retry-after')).to.equal('5');
        void holder;
      });
    } finally {
      await single.stop();
    }
  });
});
