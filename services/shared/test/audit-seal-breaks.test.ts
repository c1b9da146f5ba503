import { expect } from 'chai';
import pg from 'pg';
import { Sequelize } from 'sequelize';
import { migrateTenant } from '@vextrus/migrations';
import {
  createLogger,
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
  pendingCount,
  pgError,
  recordIn,
  type AuditPlane,
} from './audit-support.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Attacks on sealing that the tests of audit-sealing.test.ts leave out: a record committed
 * while the sealing migration is reverted or while the sealer of a stopping process is already
 * sealing, a record that no seal can chain, and a role that may not write records.
 */
describe('audit sealing: races and abuse', function () {
  this.timeout(60_000);
  let t: AuditPlane;
  let acme: TenantContext & { slug: string };
  let beta: TenantContext & { slug: string };
  let fresh: TenantContext & { slug: string };

  before(async () => {
    t = await createAuditPlane('audit_seal_breaks', ['acme', 'beta', 'fresh']);
    acme = t.tenants.acme!;
    beta = t.tenants.beta!;
    fresh = t.tenants.fresh!;
  });
  after(() => t.close());

  const pending = (tenant: TenantContext) => pendingCount(t, tenant);
  const chained = (tenant: TenantContext, action: string) => chainedIds(t, tenant, action);
  const record = recordIn;

  /** Waits until some session waits for a lock in a statement containing `fragment`. */
  async function blockedOn(fragment: string): Promise<void> {
    for (let tries = 0; tries < 200; tries++) {
      const { rows } = await t.superuser(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`,
        [fragment],
      );
      if ((rows[0] as { n: number }).n > 0) return;
      await sleep(25);
    }
    throw new Error(`no session waits for a lock in a statement with ${fragment}`);
  }

  /** A session of the application role in an open transaction of `tenant`. */
  async function openAppTransaction(tenant: TenantContext): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: t.plane.appUrl });
    await client.connect();
    await client.query('BEGIN');
    await client.query(
      `SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true),
              set_config('role', $3, true)`,
      [tenant.tenantId, `"${tenant.schema}"`, tenant.role],
    );
    return client;
  }

  it('when a record commits while the sealing migration is reverted, it is chained, not dropped', async () => {
    const writer = await openAppTransaction(beta);
    try {
      await writer.query(
        `SELECT audit_append(NULL, NULL, '{}', 'race-test', NULL, NULL, NULL,
           'sealing.during_down', 'thing', 'late', 'success', NULL, NULL)`,
      );
      const reverting = migrateTenant(t.plane.db, beta.slug, { direction: 'down' });
      // The migration has sealed, found nothing committed, and waits to drop audit_pending.
      await blockedOn('DROP TABLE audit_pending');
      await writer.query('COMMIT');
      const outcome = await reverting.then(
        (done) => ({ done }),
        (err: unknown) => ({ err }),
      );
      const { rows } = await t.superuser(`SELECT to_regclass($1) IS NOT NULL AS kept`, [
        `${beta.schema}.audit_pending`,
      ]);
      const kept = (rows[0] as { kept: boolean }).kept;
      const sealed = await chained(beta, 'sealing.during_down');
      const left = kept ? await pending(beta) : 0;
      // The committed record is in the chain, or still pending in a table that was kept.
      expect({ sealed, left }).to.satisfy(
        (o: { sealed: string[]; left: number }) =>
          (o.sealed.length === 1 && o.left === 0) || (o.sealed.length === 0 && o.left === 1),
        `record lost: ${JSON.stringify({ outcome, kept, sealed, left })}`,
      );
    } finally {
      await writer.end();
      await migrateTenant(t.plane.db, beta.slug, { direction: 'up' });
    }
    expect((await verifyAuditChain(t.app, beta)).valid).to.equal(true);
  });

  it('when a seal runs while the sealing migration is reverted, neither deadlocks, no record is lost', async () => {
    // The tenant has a chain row, and a record pending.
    await record(t.app, beta, {
      action: 'sealing.down_vs_seal',
      outcome: 'success',
      resourceId: 'o',
    });
    await sealAudit(t.app, beta);
    await record(t.app, beta, {
      action: 'sealing.down_vs_seal',
      outcome: 'success',
      resourceId: 'p',
    });
    // A session holds writers of audit_pending back, so that the migration and a reader's seal
    // arriving meanwhile each get a lock before the other's.
    const holder = new pg.Client({ connectionString: t.plane.database.url });
    await holder.connect();
    let sealing: Promise<unknown> | undefined;
    try {
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${beta.schema}.audit_pending IN SHARE MODE`);
      const reverting = migrateTenant(t.plane.db, beta.slug, { direction: 'down' }).then(
        (done) => ({ done }),
        (err: unknown) => ({ err: (err as Error).message }),
      );
      await blockedOn('DROP TABLE audit_pending');
      sealing = sealAudit(t.app, beta).catch((err: unknown) => err);
      // Past deadlock_timeout (1 s), so that the migration, not the reader, would be the one to
      // find a deadlock.
      await sleep(1_400);
      await holder.query('COMMIT');
      expect(await reverting).to.deep.equal({ done: ['2026120426-audit-sealing'] });
      await sealing;
      expect(await chained(beta, 'sealing.down_vs_seal')).to.deep.equal(['o', 'p']);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
      await sealing;
      await migrateTenant(t.plane.db, beta.slug, { direction: 'up' });
    }
  });

  it('when a record commits while the stopping sealer is sealing, stop() chains it too', async () => {
    const db = new Sequelize(t.plane.appUrl, { logging: false, pool: { max: 4 } });
    const logger = createLogger({ service: 'seal-races', level: 'silent' });
    const sealer = startAuditSealer(db, { logger, delayMs: 10 });
    // A session that holds the first record's pending row: the seal that takes it waits.
    const holder = new pg.Client({ connectionString: t.plane.database.url });
    await holder.connect();
    try {
      // Left pending by a process without a sealer, then held.
      await record(t.app, acme, {
        action: 'sealing.at_stop_race',
        outcome: 'success',
        resourceId: 'a',
      });
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${acme.schema}.audit_pending FOR UPDATE`);
      await record(db, acme, {
        action: 'sealing.at_stop_race',
        outcome: 'success',
        resourceId: 'x',
      });
      await blockedOn('audit_seal()');
      // Committed after the running seal read audit_pending: the sealer must seal again.
      await record(db, acme, {
        action: 'sealing.at_stop_race',
        outcome: 'success',
        resourceId: 'b',
      });
      const stopping = sealer.stop();
      await sleep(50);
      await holder.query('COMMIT');
      await stopping;
      expect(await chained(acme, 'sealing.at_stop_race')).to.deep.equal(['a', 'x', 'b']);
      expect(await pending(acme)).to.equal(0);
    } finally {
      await holder.end();
      await sealer.stop();
      await sealAudit(db, acme);
      await db.close();
    }
  });

  it('when audit_append is given a time the chain cannot hash, it refuses it at once, and sealing goes on', async () => {
    // The tenant's first record: the chain has no time yet to hold -infinity back.
    const append = (time: string | null, id: string) =>
      withTenantTransaction(t.app, fresh, () =>
        t.app.query(
          `SELECT audit_append($1::timestamptz, NULL, '{}', 'race-test', NULL, NULL, NULL,
             'sealing.poison', 'thing', $2, 'success', NULL, NULL)`,
          { bind: [time, id] },
        ),
      );
    const refused = await append('-infinity', 'poison').then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    await append(null, 'after');
    const sealed = await sealAudit(t.app, fresh).then(
      (n) => n,
      (err: unknown) => err as Error,
    );

    expect(refused, 'audit_append took a record that no seal can chain').to.be.instanceOf(Error);
    expect(pgError(refused).code).to.equal('22008');
    expect(sealed).to.equal(1);
    expect(await chained(fresh, 'sealing.poison')).to.deep.equal(['after']);
    expect((await verifyAuditChain(t.app, fresh)).valid).to.equal(true);
  });

  it('when the retention role calls audit_append, it is refused, as its INSERT always was', async () => {
    // The plane names its roles with one tag: <tag>tenant_acme, <tag>retention.
    const retention = String(acme.role).replace(/tenant_acme$/, 'retention');
    const client = new pg.Client({ connectionString: t.plane.database.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL ROLE "${retention}"`);
      await client.query(`SELECT set_config('app.tenant_id', $1, true)`, [acme.tenantId]);
      const forged = await client
        .query(
          `SELECT ${acme.schema}.audit_append(NULL, 'forged', '{tenant_admin}', NULL, NULL, NULL,
             NULL, 'organization.deleted', 'organization', 'forged', 'success', NULL, NULL)`,
        )
        .then(
          () => undefined,
          (err: unknown) => err as Error,
        );
      expect(forged, 'the retention role stored a record').to.be.instanceOf(Error);
      expect(pgError(forged).code).to.equal('42501');
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      await client.end();
    }
    // Its own writer, the tenant's role (through the application role), still records.
    await record(t.app, acme, { action: 'sealing.still_written', outcome: 'success' });
    expect(await sealAudit(t.app, acme)).to.equal(1);
  });

  it('when a pending record cannot be chained, sealing fails with AUDIT_SEAL_FAILED naming the tenant', async () => {
    // Only the owner (or a superuser) can store such a record: audit_append refuses it.
    await record(t.app, fresh, { action: 'sealing.before_bad', outcome: 'success' });
    await t.superuser(
      `INSERT INTO ${fresh.schema}.audit_pending (tenant_id, action, outcome)
       VALUES ($1, 'Not.Dotted', 'success')`,
      [fresh.tenantId],
    );
    try {
      const error = await sealAudit(t.app, fresh).then(
        () => undefined,
        (err: unknown) => err as Error & { code?: string },
      );
      expect(error, 'the seal succeeded').to.be.instanceOf(Error);
      expect(error!.code).to.equal('AUDIT_SEAL_FAILED');
      expect(error!.message).to.include(fresh.schema);
      expect(pgError(error!.cause).code).to.equal('23514');
      expect(await pending(fresh)).to.equal(2);
    } finally {
      await t.superuser(`DELETE FROM ${fresh.schema}.audit_pending WHERE action = 'Not.Dotted'`);
    }
    expect(await sealAudit(t.app, fresh)).to.equal(1);
  });

  it('when a function is missing inside the seal, it fails with AUDIT_SEAL_FAILED, not as nothing sealed', async () => {
    // Only "audit_seal() does not exist" means a schema from before sealing: any other missing
    // function (here one that a constraint on the chained table calls) is a failure.
    await record(t.app, fresh, { action: 'sealing.missing_function', outcome: 'success' });
    await t.superuser(
      `CREATE FUNCTION ${fresh.schema}.test_missing() RETURNS boolean LANGUAGE plpgsql
         AS $$ BEGIN RETURN ${fresh.schema}.nowhere(); END $$;
       ALTER TABLE ${fresh.schema}.audit_events
         ADD CONSTRAINT audit_events_test_missing CHECK (${fresh.schema}.test_missing()) NOT VALID`,
    );
    try {
      const error: Error & { code?: string } = await sealAudit(t.app, fresh).then(
        (sealed) => new Error(`the seal answered ${sealed}`),
        (err: unknown) => err as Error & { code?: string },
      );
      expect(error.code, error.message).to.equal('AUDIT_SEAL_FAILED');
      expect(pgError(error.cause).code).to.equal('42883');
      expect(await pending(fresh)).to.equal(1);
    } finally {
      await t.superuser(
        `ALTER TABLE ${fresh.schema}.audit_events DROP CONSTRAINT audit_events_test_missing;
         DROP FUNCTION ${fresh.schema}.test_missing()`,
      );
    }
    expect(await sealAudit(t.app, fresh)).to.equal(1);
  });

  it('when the connection of a running seal is killed, its records stay pending and the next seal chains each once', async () => {
    await record(t.app, acme, { action: 'sealing.killed', outcome: 'success', resourceId: 'k1' });
    await record(t.app, acme, { action: 'sealing.killed', outcome: 'success', resourceId: 'k2' });
    const holder = new pg.Client({ connectionString: t.plane.database.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${acme.schema}.audit_pending FOR UPDATE`);
      const sealing = sealAudit(t.app, acme).then(
        (n) => n,
        (err: unknown) => err as Error & { code?: string },
      );
      await blockedOn('audit_seal()');
      await t.superuser(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query LIKE '%audit_seal()%'`,
      );
      const killed = await sealing;
      expect(killed).to.be.instanceOf(Error);
      await holder.query('COMMIT');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
    expect(await pending(acme)).to.equal(2);
    expect(await sealAudit(t.app, acme)).to.equal(2);
    expect(await chained(acme, 'sealing.killed')).to.deep.equal(['k1', 'k2']);
    expect((await verifyAuditChain(t.app, acme)).valid).to.equal(true);
  });

  it('when the tenant is retained while a seal is due, the sealer logs, gives up, and stops cleanly', async () => {
    const db = new Sequelize(t.plane.appUrl, { logging: false, pool: { max: 2 } });
    const { lines, logger } = captureLogger('seal-breaks');
    const sealer = startAuditSealer(db, { logger, delayMs: 50, retryMs: 20, maxFailures: 3 });
    const { rows } = await t.superuser('SELECT rolname FROM pg_roles WHERE rolname = $1', [
      String(acme.role).replace(/tenant_acme$/, 'app'),
    ]);
    const login = (rows[0] as { rolname: string }).rolname;
    try {
      await record(db, acme, { action: 'sealing.retained', outcome: 'success', resourceId: 'r' });
      // The tenant's role is taken from the application role, as deprovisioning does.
      await t.superuser(`REVOKE ${acme.role} FROM ${login}`);
      for (let tries = 0; tries < 100 && !lines.some((l) => l.level === 'error'); tries++) {
        await sleep(50);
      }
      const failures = lines.filter((l) => /^cannot seal audit records/.test(String(l.msg)));
      expect(failures.map((l) => l.level)).to.deep.equal(['warn', 'warn', 'error']);
      expect(failures.map((l) => (l.err as { code?: string }).code)).to.deep.equal([
        'TENANT_UNAVAILABLE',
        'TENANT_UNAVAILABLE',
        'TENANT_UNAVAILABLE',
      ]);
      expect(await pending(acme)).to.equal(1);
      await sealer.stop();
    } finally {
      await t.superuser(`GRANT ${acme.role} TO ${login}`);
      await sealer.stop();
      await db.close();
    }
    expect(await sealAudit(t.app, acme)).to.equal(1);
  });

  it('when a record stored earlier commits after a later one was chained, it takes the head time', async () => {
    const writer = await openAppTransaction(acme);
    try {
      await writer.query(
        `SELECT audit_append(NULL, NULL, '{}', 'race-test', NULL, NULL, NULL,
           'sealing.time_order', 'thing', 'early', 'success', NULL, NULL)`,
      );
      await sleep(100);
      await record(t.app, acme, {
        action: 'sealing.time_order',
        outcome: 'success',
        resourceId: 'late',
      });
      await sealAudit(t.app, acme);
      await writer.query('COMMIT');
    } finally {
      await writer.end();
    }
    const [stored] = (await t.superuser(`SELECT occurred_at FROM ${acme.schema}.audit_pending`))
      .rows as { occurred_at: Date }[];
    await sealAudit(t.app, acme);
    const { rows } = await t.superuser(
      `SELECT resource_id, occurred_at FROM ${acme.schema}.audit_events
        WHERE action = 'sealing.time_order' ORDER BY sequence`,
    );
    const chain = rows as { resource_id: string; occurred_at: Date }[];
    expect(chain.map((row) => row.resource_id)).to.deep.equal(['late', 'early']);
    expect(chain[1]!.occurred_at.getTime()).to.equal(chain[0]!.occurred_at.getTime());
    expect(chain[1]!.occurred_at.getTime()).to.be.greaterThan(stored!.occurred_at.getTime());
  });

  it('when records were left pending by a killed process, the next write of the tenant elsewhere seals them', async () => {
    // t.app has no sealer: its records stay pending, like those of a process killed after commit.
    await record(t.app, beta, { action: 'sealing.orphaned', outcome: 'success', resourceId: 'o1' });
    const db = new Sequelize(t.plane.appUrl, { logging: false, pool: { max: 2 } });
    const sealer = startAuditSealer(db, {
      logger: createLogger({ service: 'seal-breaks', level: 'silent' }),
      delayMs: 10,
    });
    try {
      await record(db, beta, { action: 'sealing.orphaned', outcome: 'success', resourceId: 'w1' });
      for (let tries = 0; tries < 100 && (await pending(beta)) > 0; tries++) await sleep(25);
      expect(await chained(beta, 'sealing.orphaned')).to.deep.equal(['o1', 'w1']);
    } finally {
      await sealer.stop();
      await db.close();
    }
    expect((await verifyAuditChain(t.app, beta)).valid).to.equal(true);
  });
});
