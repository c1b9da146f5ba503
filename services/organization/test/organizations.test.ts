/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument,
   @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { expect } from 'chai';
import { ENTITIES } from '../src/index.js';
import { IDEMPOTENCY_PURGE_EVERY } from '../src/data/idempotency.js';
import { organizationBody, startHarness, type Harness } from './support.js';

describe('organization service: organizations', function () {
  this.timeout(60_000);
  let h: Harness;

  before(async () => {
    h = await startHarness('org_orgs');
  });
  after(async () => {
    await h?.close();
  });

  it('when an administrator creates an organization, it answers 201 with ETag and Location', async () => {
    const created = await h.call('POST', '/org/organizations', { body: organizationBody('ACME') });

    expect(created.status).to.equal(201);
    expect(created.headers.get('etag')).to.equal('"0"');
    expect(created.headers.get('location')).to.equal(`/org/organizations/${created.body.id}`);
    expect(ENTITIES.organization.response.safeParse(created.body).success).to.equal(true);
    expect(created.body).to.include({ status: 'active', fiscalYearStartMonth: 1, taxId: null });
    const read = await h.call('GET', `/org/organizations/${created.body.id}`);
    expect(read.status).to.equal(200);
    expect(read.headers.get('etag')).to.equal('"0"');
    expect(read.body).to.deep.equal(created.body);
  });

  it('when a code is already used in the tenant, create answers 409 CODE_TAKEN; another tenant may use it', async () => {
    await h.call('POST', '/org/organizations', { body: organizationBody('DUP') });

    const again = await h.call('POST', '/org/organizations', { body: organizationBody('DUP') });
    const elsewhere = await h.call('POST', '/org/organizations', {
      tenant: h.bravo,
      body: organizationBody('DUP'),
    });

    expect(again.status).to.equal(409);
    expect(again.body.code).to.equal('CODE_TAKEN');
    expect(elsewhere.status).to.equal(201);
  });

  it('when PATCH has no If-Match it answers 428, with a stale one 412, with the current one 200 and a new ETag', async () => {
    const created = await h.call('POST', '/org/organizations', { body: organizationBody('ETAG') });
    const path = `/org/organizations/${created.body.id}`;

    const without = await h.call('PATCH', path, { body: { displayName: 'New' } });
    const current = await h.call('PATCH', path, {
      body: { displayName: 'New', address: { city: 'Dhaka' } },
      headers: { 'If-Match': '"0"' },
    });
    const stale = await h.call('PATCH', path, {
      body: { displayName: 'Newer' },
      headers: { 'If-Match': '"0"' },
    });

    expect(without.status).to.equal(428);
    expect(without.body.code).to.equal('PRECONDITION_REQUIRED');
    expect(current.status).to.equal(200);
    expect(current.headers.get('etag')).to.equal('"1"');
    expect(current.body).to.include({ displayName: 'New', version: 1 });
    expect(current.body.address).to.deep.equal({ city: 'Dhaka' });
    expect(stale.status).to.equal(412);
    expect(stale.body.code).to.equal('PRECONDITION_FAILED');
    expect((await h.call('GET', path)).body.displayName).to.equal('New');
  });

  it('when 20 PATCHes arrive at once with the same If-Match, one answers 200 and the rest 412', async () => {
    const created = await h.call('POST', '/org/organizations', { body: organizationBody('RACE') });

    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        h.call('PATCH', `/org/organizations/${created.body.id}`, {
          body: { displayName: `Editor ${i}` },
          headers: { 'If-Match': '"0"' },
        }),
      ),
    );

    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).to.deep.equal([200, ...Array<number>(19).fill(412)]);
    const winner = answers.find((a) => a.status === 200);
    const stored = await h.call('GET', `/org/organizations/${created.body.id}`);
    expect(stored.body.version).to.equal(1);
    expect(stored.body.displayName).to.equal(winner?.body.displayName);
  });

  it('when two creates with one Idempotency-Key arrive at once, one row exists and both get it', async () => {
    const body = organizationBody('IDEM');
    const headers = { 'Idempotency-Key': 'create-idem-1' };

    const [first, second] = await Promise.all([
      h.call('POST', '/org/organizations', { body, headers }),
      h.call('POST', '/org/organizations', { body, headers }),
    ]);
    const third = await h.call('POST', '/org/organizations', { body, headers });

    expect([first.status, second.status, third.status]).to.deep.equal([201, 201, 201]);
    expect(second.body.id).to.equal(first.body.id);
    expect(third.body.id).to.equal(first.body.id);
    expect(third.headers.get('idempotent-replayed')).to.equal('true');
    const list = await h.call('GET', '/org/organizations?code=IDEM');
    expect(list.body.items).to.have.length(1);
  });

  it('when an Idempotency-Key is reused for a different body, it answers 422 and creates nothing', async () => {
    const headers = { 'Idempotency-Key': 'create-idem-2' };
    await h.call('POST', '/org/organizations', { body: organizationBody('KEY1'), headers });

    const reused = await h.call('POST', '/org/organizations', {
      body: organizationBody('KEY2'),
      headers,
    });

    expect(reused.status).to.equal(422);
    expect(reused.body.code).to.equal('IDEMPOTENCY_KEY_REUSED');
    expect((await h.call('GET', '/org/organizations?code=KEY2')).body.items).to.have.length(0);
  });

  it('when an Idempotency-Key is older than a day, it is free for a new request', async () => {
    const headers = { 'Idempotency-Key': 'create-idem-3' };
    await h.call('POST', '/org/organizations', { body: organizationBody('OLD1'), headers });
    await h.plane.db.sequelize.query(
      `UPDATE tenant_alpha.idempotency_keys SET created_at = now() - interval '25 hours'
        WHERE key = 'create-idem-3'`,
      { transaction: null },
    );

    const reused = await h.call('POST', '/org/organizations', {
      body: organizationBody('OLD2'),
      headers,
    });

    expect(reused.status).to.equal(201);
    expect(reused.body.code).to.equal('OLD2');
    expect(reused.headers.get('idempotent-replayed')).to.equal(null);
  });

  it('purges expired Idempotency-Keys as new keys come in, a bounded batch at a time', async () => {
    const expired = async () => {
      const [rows] = await h.plane.db.sequelize.query(
        "SELECT count(*)::int AS n FROM tenant_alpha.idempotency_keys WHERE key LIKE 'expired-%'",
        { transaction: null },
      );
      return (rows as { n: number }[])[0]?.n;
    };
    await h.plane.db.sequelize.query(
      `INSERT INTO tenant_alpha.idempotency_keys
         (tenant_id, key, fingerprint, response_status, created_at)
       SELECT '${h.alpha.tenantId}', 'expired-' || g, 'x', 201, now() - interval '25 hours'
         FROM generate_series(1, 600) g`,
      { transaction: null },
    );
    await h.plane.db.sequelize.query(
      `INSERT INTO tenant_bravo.idempotency_keys
         (tenant_id, key, fingerprint, response_status, created_at)
       VALUES ('${h.bravo.tenantId}', 'expired-bravo', 'x', 201, now() - interval '25 hours')`,
      { transaction: null },
    );

    for (let i = 0; i < IDEMPOTENCY_PURGE_EVERY; i++) {
      const created = await h.call('POST', '/org/organizations', {
        body: organizationBody(`PURGE${i}`),
        headers: { 'Idempotency-Key': `purge-${i}` },
      });
      expect(created.status).to.equal(201);
    }

    // At least one purge ran, and none took more than its batch; bravo's key is bravo's.
    expect(await expired()).to.be.at.most(600 - 500);
    const [bravo] = await h.plane.db.sequelize.query(
      "SELECT count(*)::int AS n FROM tenant_bravo.idempotency_keys WHERE key = 'expired-bravo'",
      { transaction: null },
    );
    expect((bravo as { n: number }[])[0]?.n).to.equal(1);
    // The keys just used still answer with their first reply.
    const replay = await h.call('POST', '/org/organizations', {
      body: organizationBody('PURGE0'),
      headers: { 'Idempotency-Key': 'purge-0' },
    });
    expect(replay.headers.get('idempotent-replayed')).to.equal('true');
  });

  it('when pages are read while rows are inserted, every row present at the start is seen exactly once', async () => {
    for (let i = 0; i < 7; i++) {
      await h.call('POST', '/org/organizations', { body: organizationBody(`PG${i}`) });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `name=PG&sort=-code&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await h.call('GET', `/org/organizations?${query}`);
      expect(page.status).to.equal(200);
      seen.push(...page.body.items.map((o: { code: string }) => o.code));
      cursor = page.body.nextCursor;
      // Inserted between pages: one before the reading position, one after it.
      await h.call('POST', '/org/organizations', { body: organizationBody(`PG${pages}A`) });
      pages++;
    } while (cursor);

    const original = ['PG6', 'PG5', 'PG4', 'PG3', 'PG2', 'PG1', 'PG0'];
    expect(seen.filter((code) => original.includes(code))).to.deep.equal(original);
    expect(new Set(seen).size).to.equal(seen.length);
  });

  it('when sorted by createdAt, pages follow insertion order to the microsecond', async () => {
    const codes = ['TS1', 'TS2', 'TS3', 'TS4'];
    for (const code of codes)
      await h.call('POST', '/org/organizations', { body: organizationBody(code) });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const path: string = `/org/organizations?name=TS&sort=createdAt&limit=1${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await h.call('GET', path);
      seen.push(...page.body.items.map((o: { code: string }) => o.code));
      cursor = page.body.nextCursor;
    } while (cursor);

    expect(seen).to.deep.equal(codes);
  });

  it('when filtered by status, code or name, the list holds only matching rows', async () => {
    const kept = await h.call('POST', '/org/organizations', {
      body: organizationBody('FLT1', { displayName: 'Filter 100% match' }),
    });
    const gone = await h.call('POST', '/org/organizations', { body: organizationBody('FLT2') });
    await h.call('POST', `/org/organizations/${gone.body.id}/archive`);

    const archived = await h.call('GET', '/org/organizations?status=archived&name=FLT');
    const byCode = await h.call('GET', '/org/organizations?code=FLT1');
    const literal = await h.call('GET', `/org/organizations?name=${encodeURIComponent('100%')}`);
    const wildcard = await h.call('GET', `/org/organizations?name=${encodeURIComponent('%')}`);

    expect(archived.body.items.map((o: { id: string }) => o.id)).to.deep.equal([gone.body.id]);
    expect(byCode.body.items.map((o: { id: string }) => o.id)).to.deep.equal([kept.body.id]);
    expect(literal.body.items.map((o: { id: string }) => o.id)).to.deep.equal([kept.body.id]);
    expect(wildcard.body.items.map((o: { id: string }) => o.id)).to.deep.equal([kept.body.id]);
  });

  it('when a member or an auditor reads, it answers 200; when they write, 403', async () => {
    for (const role of ['member', 'auditor']) {
      const read = await h.call('GET', '/org/organizations', { roles: [role] });
      const write = await h.call('POST', '/org/organizations', {
        roles: [role],
        body: organizationBody(`ROLE-${role}`),
      });
      expect(read.status, role).to.equal(200);
      expect(write.status, role).to.equal(403);
      expect(write.body.code).to.equal('FORBIDDEN');
    }
    const manager = await h.call('POST', '/org/organizations', {
      roles: ['manager'],
      body: organizationBody('ROLE-M'),
    });
    expect(manager.status).to.equal(201);
  });

  it('when the token is missing or belongs to another tenant than X-Tenant-ID, it answers 401 or 403', async () => {
    const anonymous = await h.call('GET', '/org/organizations', { anonymous: true });
    const mismatch = await h.call('GET', '/org/organizations', {
      headers: { 'X-Tenant-ID': 'bravo' },
    });

    expect(anonymous.status).to.equal(401);
    expect(anonymous.body.code).to.equal('UNAUTHENTICATED');
    expect(mismatch.status).to.equal(403);
    expect(mismatch.body.code).to.equal('TENANT_MISMATCH');
  });

  it('when X-Tenant-ID is missing, it answers 403 TENANT_MISMATCH', async () => {
    const response = await fetch(`${h.service.url}/org/organizations`, {
      headers: { Authorization: `Bearer ${h.token(h.alpha)}` },
    });

    expect(response.status).to.equal(403);
    expect(((await response.json()) as { code: string }).code).to.equal('TENANT_MISMATCH');
  });
});
