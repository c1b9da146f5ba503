import { expect } from 'chai';
import type pg from 'pg';
import { Sequelize } from 'sequelize';
import { createPlane, type TestPlane, runMigrationsCli } from '@vextrus/devkit';
import {
  recordAuditSeparately,
  sealAudit,
  verifyAuditChain,
  type TenantContext,
} from '@vextrus/shared';
import { MigrationErrorCode, provision, type Database, type MigrationError } from '../src/index.js';
import { enforceAuditRetention, setAuditRetention, verifyTenantAudit } from '../src/audit/index.js';
import { asSuperuser, retentionLogin } from './support/retention.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

const cli = runMigrationsCli;

describe('audit retention and verification', function () {
  this.timeout(60_000);
  let plane: TestPlane;
  let app: Sequelize;
  let retentionDb: Database;
  let retentionUrl: string;
  let env: NodeJS.ProcessEnv;
  const tenants: Record<string, TenantContext> = {};

  const superuser = (text: string, values?: unknown[]): Promise<pg.QueryResult> =>
    asSuperuser(plane, text, values);

  /** Records, oldest first, each `age` milliseconds before now (the chain keeps time ordered). */
  async function seed(slug: string, ages: number[]): Promise<void> {
    const now = Date.now();
    for (const [i, age] of ages.entries()) {
      await recordAuditSeparately(
        app,
        tenants[slug]!,
        { action: 'organization.updated', outcome: 'success', resourceId: `r${i}` },
        { occurredAt: new Date(now - age) },
      );
    }
    // Chained now, as the services' sealer would do a moment later.
    await sealAudit(app, tenants[slug]!);
  }

  async function kept(slug: string): Promise<string[]> {
    await plane.sealAudit(tenants[slug]!.schema);
    const result = await superuser(
      `SELECT resource_id FROM ${tenants[slug]!.schema}.audit_events ORDER BY sequence`,
    );
    return result.rows.map((row: { resource_id: string }) => row.resource_id);
  }

  before(async () => {
    plane = await createPlane('audit_retention');
    for (const slug of ['acme', 'beta', 'gamma']) {
      const result = await provision(plane.db, slug);
      tenants[slug] = { tenantId: result.tenantId, schema: result.schema, role: result.role };
    }
    app = new Sequelize(plane.appUrl, { logging: false });
    ({ url: retentionUrl, db: retentionDb, env } = await retentionLogin(plane));
  });
  after(async () => {
    await app.close();
    await plane.close();
  });

  it('removes exactly the records older than the tenant’s window, and the chain still verifies', async () => {
    await setAuditRetention(plane.db, 'acme', 30);
    await seed('acme', [40 * DAY, 31 * DAY, 30 * DAY + HOUR, 30 * DAY - HOUR, 10 * DAY, 0]);

    const run = await enforceAuditRetention(retentionDb, { slug: 'acme' }, { batchSize: 2 });

    expect(run.failed).to.deep.equal([]);
    expect(run.done[0]).to.deep.include({ tenant: 'acme', retentionDays: 30, deleted: 3 });
    expect(run.done[0]?.checkpoint.sequence).to.equal(3);
    expect(await kept('acme')).to.deep.equal(['r3', 'r4', 'r5']);
    const report = await verifyAuditChain(app, tenants.acme!);
    expect(report).to.deep.include({ valid: true, checked: 3 });
    expect(report.checkpoint.sequence).to.equal(3);
  });

  it('as a CronJob with --all, it applies each tenant’s own window (365 days by default)', async () => {
    await seed('beta', [400 * DAY, 300 * DAY, DAY]);
    await setAuditRetention(plane.db, 'gamma', 7);
    await seed('gamma', [8 * DAY, 6 * DAY]);

    const outcome = await cli(['audit', 'retention', '--all'], {
      ...env,
      DATABASE_URL: retentionUrl,
    });

    expect(outcome.code, outcome.stderr).to.equal(0);
    const run = JSON.parse(outcome.stdout) as { done: { tenant: string; deleted: number }[] };
    expect(run.done.map((r) => [r.tenant, r.deleted])).to.deep.equal([
      ['acme', 0],
      ['beta', 1],
      ['gamma', 1],
    ]);
    expect(await kept('beta')).to.deep.equal(['r1', 'r2']);
    expect(await kept('gamma')).to.deep.equal(['r1']);
    expect((await verifyAuditChain(app, tenants.beta!)).valid).to.equal(true);
  });

  it('when the retention role deletes a record in the middle of the chain, it is refused', async () => {
    const error = await retentionDb.sequelize
      .transaction(async (transaction) => {
        await retentionDb.sequelize.query(`SELECT set_config('app.tenant_id', $1, true)`, {
          bind: [tenants.acme!.tenantId],
          transaction,
        });
        await retentionDb.sequelize.query(
          `DELETE FROM ${tenants.acme!.schema}.audit_events WHERE resource_id = 'r4'`,
          { transaction },
        );
      })
      .then(
        () => undefined,
        (err: { original?: { code?: string } }) => err,
      );

    expect(error?.original?.code).to.equal('42501');
    expect(await kept('acme')).to.deep.equal(['r3', 'r4', 'r5']);
  });

  it('when the retention role updates a record, it is refused', async () => {
    const error = await retentionDb.sequelize
      .query(`UPDATE ${tenants.acme!.schema}.audit_events SET outcome = 'failure'`)
      .then(
        () => undefined,
        (err: { original?: { code?: string } }) => err,
      );

    expect(error?.original?.code).to.equal('42501');
  });

  it('when the window is not a whole number of days from 1 to 36500, it is refused', async () => {
    const error = await setAuditRetention(plane.db, 'acme', 0).then(
      () => undefined,
      (err: MigrationError) => err,
    );

    expect(error?.code).to.equal(MigrationErrorCode.InvalidArguments);
  });

  it('when the tenant is unknown, setting its window says so', async () => {
    const error = await setAuditRetention(plane.db, 'nobody', 30).then(
      () => undefined,
      (err: MigrationError) => err,
    );

    expect(error?.code).to.equal(MigrationErrorCode.TenantNotProvisioned);
  });

  describe('verify', () => {
    before(async () => {
      await seed(
        'beta',
        Array.from({ length: 8 }, () => 0),
      );
    });

    it('when the chain is intact, audit verify exits 0 with a valid report', async () => {
      const outcome = await cli(['audit', 'verify', 'beta'], {
        ...env,
        DATABASE_URL: retentionUrl,
      });

      expect(outcome.code, outcome.stderr).to.equal(0);
      expect(JSON.parse(outcome.stdout)).to.deep.include({ tenant: 'beta', valid: true });
    });

    it('when the owner edits a record in the middle, verify reports that record as altered', async () => {
      const schema = tenants.beta!.schema;
      await superuser(`
        SET session_replication_role = replica;
        UPDATE ${schema}.audit_events SET outcome = 'failure' WHERE sequence = 6;
      `);
      try {
        const outcome = await cli(['audit', 'verify', 'beta'], {
          ...env,
          DATABASE_URL: retentionUrl,
        });

        expect(outcome.code).to.equal(1);
        expect(outcome.stderr).to.contain('DRIFT_DETECTED').and.to.contain('record 6');
        const report = JSON.parse(outcome.stdout) as { valid: boolean; problem: object };
        expect(report.valid).to.equal(false);
        expect(report.problem).to.deep.include({ code: 'RECORD_ALTERED', sequence: 6 });
      } finally {
        await superuser(`
          SET session_replication_role = replica;
          UPDATE ${schema}.audit_events SET outcome = 'success' WHERE sequence = 6;
        `);
      }
    });

    it('when the owner deletes a record in the middle, verify reports the first missing one', async () => {
      const schema = tenants.beta!.schema;
      await superuser(`
        SET session_replication_role = replica;
        DELETE FROM ${schema}.audit_events WHERE sequence IN (7, 8);
      `);

      const report = await verifyTenantAudit(plane.db, 'beta');

      expect(report.valid).to.equal(false);
      expect(report.problem).to.deep.include({ code: 'MISSING_RECORDS', sequence: 7 });
    });

    it('when the owner swaps in a record with a recomputed hash, verify reports the broken link', async () => {
      const schema = tenants.beta!.schema;
      await superuser(`
        SET session_replication_role = replica;
        UPDATE ${schema}.audit_events e SET outcome = 'failure' WHERE sequence = 4;
        UPDATE ${schema}.audit_events e SET hash = ${schema}.audit_event_hash(e)
         WHERE sequence = 4;
      `);

      const report = await verifyTenantAudit(plane.db, 'beta');

      expect(report.valid).to.equal(false);
      expect(report.problem).to.deep.include({ code: 'BROKEN_LINK', sequence: 5 });
    });

    it('when the tenant is unknown, audit verify exits 1 naming the tenant', async () => {
      const outcome = await cli(['audit', 'verify', 'nobody'], {
        ...env,
        DATABASE_URL: retentionUrl,
      });

      expect(outcome.code).to.equal(1);
      expect(outcome.stderr).to.contain('TENANT_NOT_PROVISIONED').and.to.contain('nobody');
    });
  });

  it('when retention has neither --tenant nor --all, it exits 1 with the usage', async () => {
    const outcome = await cli(['audit', 'retention'], { ...env, DATABASE_URL: retentionUrl });

    expect(outcome.code).to.equal(1);
    expect(outcome.stderr).to.contain('INVALID_ARGUMENTS').and.to.contain('--tenant <slug>');
  });
});
