import { expect } from 'chai';
import { Registry } from 'prom-client';
import { Sequelize } from 'sequelize';
import {
  sealAudit,
  startAuditSealer,
  verifyAuditChain,
  withTenantTransaction,
  type TenantContext,
} from '@vextrus/shared';
import {
  captureLogger,
  chainedIds,
  createAuditPlane,
  createTokenMint,
  failure,
  pendingCount,
  pgError,
  recordIn,
  startAuditService,
  type AuditPlane,
  type TokenMint,
} from './audit-support.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Records are stored as pending in their mutation's transaction and chained after the commit
 * (tenant migration 2026120426-audit-sealing): by the sealer of the process, by every reader of
 * the log, or by an explicit sealAudit. These tests check that no committed record is lost or
 * chained twice on the way, whoever seals and whatever fails.
 */
describe('audit sealing: records chained after their commit', function () {
  this.timeout(60_000);
  let t: AuditPlane;
  let acme: TenantContext;
  let beta: TenantContext;
  let mint: TokenMint;

  before(async () => {
    t = await createAuditPlane('audit_sealing', ['acme', 'beta']);
    acme = t.tenants.acme!;
    beta = t.tenants.beta!;
    mint = createTokenMint();
  });
  after(() => t.close());

  const pending = (tenant: TenantContext) => pendingCount(t, tenant);
  const chained = (tenant: TenantContext, action: string) => chainedIds(t, tenant, action);
  const record = recordIn;

  it('when a transaction records, the record waits as pending, and a seal chains it once', async () => {
    await record(t.app, acme, { action: 'sealing.plain', outcome: 'success', resourceId: 'p1' });

    expect(await pending(acme)).to.equal(1);
    expect(await chained(acme, 'sealing.plain')).to.deep.equal([]);
    expect(await sealAudit(t.app, acme)).to.equal(1);
    expect(await sealAudit(t.app, acme)).to.equal(0);
    expect(await pending(acme)).to.equal(0);
    expect(await chained(acme, 'sealing.plain')).to.deep.equal(['p1']);
    expect((await verifyAuditChain(t.app, acme)).valid).to.equal(true);
  });

  it('when a process has a sealer, it chains records soon after their commit, without a read', async () => {
    const db = new Sequelize(t.plane.appUrl, { logging: false, pool: { max: 4 } });
    const { logger } = captureLogger('sealing-test');
    const sealer = startAuditSealer(db, { logger, delayMs: 20 });
    try {
      await Promise.all(
        ['s1', 's2', 's3'].map((id) =>
          record(db, acme, { action: 'sealing.background', outcome: 'success', resourceId: id }),
        ),
      );
      let ids: string[] = [];
      for (let tries = 0; tries < 100 && ids.length < 3; tries++) {
        await sleep(50);
        ids = await chained(acme, 'sealing.background');
      }
      expect(ids).to.have.members(['s1', 's2', 's3']);
      expect(await pending(acme)).to.equal(0);
    } finally {
      await sealer.stop();
      await db.close();
    }
  });

  it('when a process stops, its sealer chains what was due before the pool closes', async () => {
    const db = new Sequelize(t.plane.appUrl, { logging: false, pool: { max: 2 } });
    const { logger } = captureLogger('sealing-test');
    const sealer = startAuditSealer(db, { logger, delayMs: 60_000 });
    try {
      await record(db, acme, { action: 'sealing.at_stop', outcome: 'success', resourceId: 'x' });
      expect(await pending(acme)).to.equal(1);
      await sealer.stop();
      expect(await pending(acme)).to.equal(0);
      expect(await chained(acme, 'sealing.at_stop')).to.deep.equal(['x']);
    } finally {
      await db.close();
    }
  });

  it('when a seal fails, the records stay pending, in order, and a later try chains them all', async () => {
    const db = new Sequelize(t.plane.appUrl, { logging: false, pool: { max: 2 } });
    const { lines, logger } = captureLogger('sealing-test');
    const registry = new Registry();
    const sealer = startAuditSealer(db, {
      logger,
      delayMs: 10,
      retryMs: 50,
      maxFailures: 100,
      registry,
    });
    const metric = async (name: string): Promise<number> =>
      (await registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0;
    // The chain refuses one record for a while: the whole batch waits, nothing is dropped.
    await t.superuser(
      `ALTER TABLE ${acme.schema}.audit_events
         ADD CONSTRAINT audit_events_test_refuse CHECK (resource_id <> 'stuck')`,
    );
    try {
      for (const id of ['before', 'stuck', 'after']) {
        await record(db, acme, { action: 'sealing.retried', outcome: 'success', resourceId: id });
      }
      await sleep(400);
      expect(await pending(acme)).to.equal(3);
      expect(await chained(acme, 'sealing.retried')).to.deep.equal([]);
      const warned = lines.filter((line) => line.msg === 'cannot seal audit records yet');
      expect(warned.length).to.be.greaterThan(1);
      expect(warned[0]).to.deep.include({ tenant: acme.schema });
      expect(await metric('audit_seal_failures_total')).to.be.at.least(warned.length);
      expect(await metric('audit_seals_due')).to.equal(1);

      await t.superuser(
        `ALTER TABLE ${acme.schema}.audit_events DROP CONSTRAINT audit_events_test_refuse`,
      );
      let ids: string[] = [];
      for (let tries = 0; tries < 100 && ids.length < 3; tries++) {
        await sleep(50);
        ids = await chained(acme, 'sealing.retried');
      }
      expect(ids).to.deep.equal(['before', 'stuck', 'after']);
      expect((await verifyAuditChain(t.app, acme)).valid).to.equal(true);
      expect(await metric('audit_records_sealed_total')).to.equal(3);
      await sleep(100);
      expect(await metric('audit_seals_due')).to.equal(0);
    } finally {
      await t.superuser(
        `ALTER TABLE ${acme.schema}.audit_events DROP CONSTRAINT IF EXISTS audit_events_test_refuse`,
      );
      await sealer.stop();
      await db.close();
    }
  });

  it('when records were left pending (their process died), the query API and verify chain them first', async () => {
    // t.app has no sealer: its records stay pending, like those of a process killed after commit.
    await record(t.app, beta, { action: 'sealing.orphan', outcome: 'success', resourceId: 'o1' });
    expect(await pending(beta)).to.equal(1);
    const service = await startAuditService(t, mint);
    try {
      const headers = {
        Authorization: `Bearer ${mint.token(t.tenants.beta!, ['auditor'])}`,
        'X-Tenant-ID': 'beta',
      };
      const page = await fetch(`${service.url}/audit/events?action=sealing.orphan`, { headers });
      const body = (await page.json()) as { items: { resourceId: string }[] };
      expect(body.items.map((item) => item.resourceId)).to.deep.equal(['o1']);

      await record(t.app, beta, { action: 'sealing.orphan', outcome: 'success', resourceId: 'o2' });
      const verified = await fetch(`${service.url}/audit/verify`, { headers });
      expect(await verified.json()).to.deep.include({ valid: true });
      expect(await pending(beta)).to.equal(0);
      expect(await chained(beta, 'sealing.orphan')).to.deep.equal(['o1', 'o2']);
      // The service's own sealer reports on /metrics (it sealed nothing here: readers did).
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      expect(metrics).to.match(/^audit_records_sealed_total\{service="audit-test"\} 0$/m);
      expect(metrics).to.match(/^audit_seals_due\{service="audit-test"\} 0$/m);
    } finally {
      await service.stop();
    }
  });

  it('when records and seals of many callers race, each record is chained exactly once', async () => {
    const before = (await verifyAuditChain(t.app, acme)).checked;
    let writing = true;
    const sealers = Array.from({ length: 4 }, async () => {
      let sealed = 0;
      while (writing) sealed += await sealAudit(t.app, acme);
      return sealed;
    });
    await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        record(t.app, acme, { action: 'sealing.race', outcome: 'success', resourceId: `r${i}` }),
      ),
    );
    writing = false;
    const sealedByRacers = (await Promise.all(sealers)).reduce((a, b) => a + b, 0);
    const sealedAfter = await sealAudit(t.app, acme);

    expect(sealedByRacers + sealedAfter).to.equal(200);
    const ids = await chained(acme, 'sealing.race');
    expect(ids).to.have.length(200);
    expect(new Set(ids).size).to.equal(200);
    expect(await verifyAuditChain(t.app, acme)).to.deep.include({
      valid: true,
      checked: before + 200,
    });
  });

  it('when a tenant seals, the records of another tenant stay where they are', async () => {
    await record(t.app, beta, { action: 'sealing.apart', outcome: 'success', resourceId: 'b' });
    expect(await sealAudit(t.app, acme)).to.equal(0);
    expect(await pending(beta)).to.equal(1);

    // Acting as beta, acme's sealer is out of reach: beta's role has no access to acme's schema.
    const error = await failure(
      withTenantTransaction(t.app, beta, () => t.app.query(`SELECT ${acme.schema}.audit_seal()`)),
    );
    expect(pgError(error).code).to.equal('42501');
    expect(await sealAudit(t.app, beta)).to.equal(1);
  });

  for (const statement of [
    'SELECT * FROM audit_pending',
    "INSERT INTO audit_pending (action, outcome) VALUES ('sealing.forged', 'success')",
    'DELETE FROM audit_pending',
    "UPDATE audit_pending SET outcome = 'failure'",
    'TRUNCATE audit_pending',
  ]) {
    it(`when the application role tries ${statement.split(' ')[0]} on pending records, it is refused`, async () => {
      const error = await failure(withTenantTransaction(t.app, acme, () => t.app.query(statement)));
      expect(pgError(error).code).to.equal('42501');
    });
  }

  it('when audit_append is called with what the chain would refuse, it refuses it at once', async () => {
    const error = await failure(
      withTenantTransaction(t.app, acme, () =>
        t.app.query(
          `SELECT audit_append(NULL, NULL, '{}', NULL, NULL, NULL, NULL, 'Not.Dotted', NULL, NULL,
             'success', NULL, NULL)`,
        ),
      ),
    );
    const cause = pgError(error) as { code?: string; constraint?: string };
    expect(cause.code).to.equal('23514');
    expect(cause.constraint).to.equal('audit_events_action_check');
    expect(await pending(acme)).to.equal(0);
  });
});
