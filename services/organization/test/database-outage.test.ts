/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment,
   @typescript-eslint/no-unsafe-call -- response bodies are untyped JSON, and the assertions are
   what check their shape. */
import { expect } from 'chai';
import { startOwnPostgres, type OwnPostgres } from '@vextrus/devkit';
import { organizationBody, startHarness, type Harness } from './support.js';

/*
 * The organization service while its PostgreSQL is stopped and started again, with no restart of
 * the service: requests answer 503 problem+json at once instead of hanging or answering 500, no
 * change is half-made, and the service serves again as soon as the database is back. The suite
 * runs a PostgreSQL of its own, since it stops it.
 */
describe('organization service during a database outage (real PostgreSQL, stopped and started)', function () {
  this.timeout(120_000);
  let postgres: OwnPostgres;
  let h: Harness;

  /** A plain GET of the service that gives up after 20 s (a hang fails the test, not mocha). */
  const get = (route: string) =>
    fetch(`${h.service.url}${route}`, { signal: AbortSignal.timeout(20_000) });

  before(async () => {
    postgres = await startOwnPostgres('org-outage');
    h = await startHarness('org_outage');
  });

  after(async () => {
    await h?.service.stop();
    await postgres?.dispose();
  });

  it('answers 503 problem+json while PostgreSQL is down and serves again once it is back', async () => {
    const created = await h.call('POST', '/org/organizations', { body: organizationBody('OUT1') });
    expect(created.status).to.equal(201);
    const id = created.body.id as string;
    const etag = created.headers.get('etag') ?? '';

    await postgres.stop();

    const ready = await get('/health/ready');
    expect(ready.status).to.equal(503);
    expect((await get('/health/live')).status).to.equal(200);
    const list = await h.call('GET', '/org/organizations');
    expect(list.status).to.equal(503);
    expect(list.headers.get('content-type')).to.match(/^application\/problem\+json/);
    expect(list.headers.get('retry-after')).to.equal('5');
    expect(list.body.code).to.equal('UNAVAILABLE');
    expect(JSON.stringify(list.body)).not.to.match(/ECONNREFUSED|at .*\.js:\d+/);
    const patch = await h.call('PATCH', `/org/organizations/${id}`, {
      body: { displayName: 'Changed while down' },
      headers: { 'If-Match': etag },
    });
    expect(patch.status).to.equal(503);
    const create = await h.call('POST', '/org/organizations', { body: organizationBody('OUT2') });
    expect(create.status).to.equal(503);

    await postgres.start();
    // The first request after the restart already goes through: no connection from before it
    // is handed out again.
    const read = await h.call('GET', `/org/organizations/${id}`);
    expect(read.status).to.equal(200);
    expect((await get('/health/ready')).status).to.equal(200);

    // Nothing of the refused changes was made; the same requests now go through, audited.
    expect(read.body.displayName).to.equal('OUT1 Group');
    expect(read.headers.get('etag')).to.equal(etag);
    const codes = (await h.call('GET', '/org/organizations')).body.items.map(
      (o: { code: string }) => o.code,
    );
    expect(codes).to.deep.equal(['OUT1']);
    const retried = await h.call('PATCH', `/org/organizations/${id}`, {
      body: { displayName: 'Changed after' },
      headers: { 'If-Match': etag },
    });
    expect(retried.status).to.equal(200);
    const records = await h.call('GET', `/audit/events?resourceId=${id}`, {
      roles: ['auditor'],
    });
    expect(records.status).to.equal(200);
    expect(records.body.items.map((r: { action: string }) => r.action)).to.deep.equal([
      'organization.updated',
      'organization.created',
    ]);
  });
});

/*
 * A request whose rows are locked by other work (a stuck transaction, a migration's DDL) waits at
 * most DATABASE_LOCK_TIMEOUT_MS, then answers 503, instead of holding its connection for as
 * long as the lock is held.
 */
describe('organization service when the data it needs stays locked (real PostgreSQL)', function () {
  this.timeout(60_000);
  let h: Harness;

  before(async () => {
    h = await startHarness('org_locked', { DATABASE_LOCK_TIMEOUT_MS: '300' });
  });

  after(async () => {
    await h?.close();
  });

  it('gives up after the lock timeout with 503 and changes nothing', async () => {
    const created = await h.call('POST', '/org/organizations', { body: organizationBody('LCK1') });
    expect(created.status).to.equal(201);
    const id = created.body.id as string;
    const etag = created.headers.get('etag') ?? '';
    const holder = h.plane.open();
    const release = await holder.sequelize.transaction();
    try {
      await holder.sequelize.query(
        `SELECT 1 FROM tenant_alpha.organizations WHERE id = $1 FOR UPDATE`,
        { bind: [id], transaction: release },
      );
      const started = Date.now();
      const patch = await h.call('PATCH', `/org/organizations/${id}`, {
        body: { displayName: 'Changed under a lock' },
        headers: { 'If-Match': etag },
      });
      const waited = Date.now() - started;

      expect(patch.status).to.equal(503);
      expect(patch.headers.get('retry-after')).to.not.equal(null);
      expect(patch.body.code).to.equal('UNAVAILABLE');
      expect(waited).to.be.below(10_000);
    } finally {
      await release.rollback();
      await holder.close();
    }
    const read = await h.call('GET', `/org/organizations/${id}`);
    expect(read.body.displayName).to.equal('LCK1 Group');
    const retried = await h.call('PATCH', `/org/organizations/${id}`, {
      body: { displayName: 'Changed after' },
      headers: { 'If-Match': etag },
    });
    expect(retried.status).to.equal(200);
  });
});
