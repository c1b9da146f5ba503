import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { Sequelize } from 'sequelize';
import { createPlane, loginUrl, runMigrationsCli, spawnTs, type TestPlane } from '@vextrus/devkit';
import {
  recordAuditSeparately,
  sealAudit,
  verifyAuditChain,
  type TenantContext,
} from '@vextrus/shared';
import { deprovision, provision, type Database } from '../src/index.js';
import { enforceAuditRetention, setAuditRetention, verifyTenantAudit } from '../src/audit/index.js';
import { asSuperuser, retentionLogin } from './support/retention.js';

const DAY = 86_400_000;
const MINUTE = 60_000;

/**
 * Adversarial cases for `audit retention` and `audit verify`: runs killed half-way, runs that
 * race each other, the service or a deprovisioning, the edge of the window, tampered checkpoints,
 * and bad command lines.
 */
describe('audit retention and verification under attack', function () {
  this.timeout(90_000);
  let plane: TestPlane;
  let app: Sequelize;
  let retentionDb: Database;
  let retentionUrl: string;
  let env: NodeJS.ProcessEnv;
  const tenants: Record<string, TenantContext> = {};

  const superuser = (text: string, values?: unknown[]): Promise<pg.QueryResult> =>
    asSuperuser(plane, text, values);

  async function addTenant(slug: string, days?: number): Promise<TenantContext> {
    const result = await provision(plane.db, slug);
    tenants[slug] = { tenantId: result.tenantId, schema: result.schema, role: result.role };
    if (days !== undefined) await setAuditRetention(plane.db, slug, days);
    return tenants[slug];
  }

  /** Records, oldest first, each `age` milliseconds before now. */
  async function seed(slug: string, ages: number[], prefix = 'r'): Promise<void> {
    const now = Date.now();
    for (const [i, age] of ages.entries()) {
      await recordAuditSeparately(
        app,
        tenants[slug]!,
        { action: 'organization.updated', outcome: 'success', resourceId: `${prefix}${i}` },
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

  async function chainRow(slug: string): Promise<{ checkpoint: number; head: number }> {
    const result = await superuser(
      `SELECT checkpoint_sequence::int AS checkpoint, head_sequence::int AS head
         FROM ${tenants[slug]!.schema}.audit_chain`,
    );
    return result.rows[0] as { checkpoint: number; head: number };
  }

  /**
   * Holds a row lock on one record in a superuser session, so that a retention batch that
   * reaches it waits; returns the session (commit it to let go).
   */
  async function block(slug: string, sequence: number): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: plane.database.url });
    await client.connect();
    await client.query('BEGIN');
    await client.query(
      `SELECT 1 FROM ${tenants[slug]!.schema}.audit_events WHERE sequence = $1 FOR UPDATE`,
      [sequence],
    );
    return client;
  }

  /** The pid of the retention role's backend waiting for a lock, once there is one. */
  async function waitingRetentionBackend(): Promise<number> {
    for (let i = 0; i < 200; i++) {
      const result = await superuser(
        `SELECT pid FROM pg_stat_activity
          WHERE usename = $1 AND wait_event_type = 'Lock' AND datname = current_database()`,
        [plane.db.roles.retention],
      );
      const pid = (result.rows[0] as { pid?: number } | undefined)?.pid;
      if (pid !== undefined) return pid;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('no retention backend came to wait for the lock');
  }

  async function expectValid(slug: string): Promise<void> {
    const report = await verifyAuditChain(app, tenants[slug]!);
    expect(report.valid, JSON.stringify(report.problem)).to.equal(true);
    expect(report.checkpoint.sequence).to.equal((await chainRow(slug)).checkpoint);
  }

  const cli = (args: string[], url = retentionUrl) =>
    runMigrationsCli(args, { ...env, DATABASE_URL: url });

  /** A usage or refusal: exit 1, one `error [CODE]: …` line first, no stack trace. */
  function expectRefused(
    outcome: { code: number; stdout: string; stderr: string },
    code: string,
  ): void {
    expect(outcome.code, outcome.stderr).to.equal(1);
    expect(outcome.stderr.split('\n')[0]).to.match(new RegExp(`^error \\[${code}\\]: \\S`));
    expect(outcome.stderr).not.to.match(/^\s+at /m);
    expect(outcome.stdout).to.equal('');
  }

  before(async () => {
    plane = await createPlane('audit_retention_break');
    app = new Sequelize(plane.appUrl, { logging: false });
    ({ url: retentionUrl, db: retentionDb, env } = await retentionLogin(plane));
  });
  after(async () => {
    await app.close();
    await plane.close();
  });

  describe('killed half-way', () => {
    it('when its connection is terminated mid-run, nothing is half-deleted and a rerun finishes', async () => {
      await addTenant('cut', 30);
      await seed(
        'cut',
        [90, 80, 70, 60, 50, 40, 1].map((d) => d * DAY),
      );
      const lock = await block('cut', 4);
      const running = enforceAuditRetention(retentionDb, { slug: 'cut' }, { batchSize: 2 });
      try {
        const pid = await waitingRetentionBackend();
        await superuser('SELECT pg_terminate_backend($1)', [pid]);
      } finally {
        await lock.query('COMMIT');
        await lock.end();
      }
      const run = await running;

      expect(run.done).to.deep.equal([]);
      expect(run.failed.map((f) => f.tenant)).to.deep.equal(['cut']);
      expect(await kept('cut')).to.deep.equal(['r2', 'r3', 'r4', 'r5', 'r6']);
      expect((await chainRow('cut')).checkpoint).to.equal(2);
      await expectValid('cut');

      const again = await enforceAuditRetention(retentionDb, { slug: 'cut' }, { batchSize: 2 });
      expect(again.failed).to.deep.equal([]);
      expect(again.done[0]).to.deep.include({ deleted: 4 });
      expect(again.done[0]?.checkpoint.sequence).to.equal(6);
      expect(await kept('cut')).to.deep.equal(['r6']);
      await expectValid('cut');
    });

    it('when the CLI process is killed with SIGKILL mid-run, the batch rolls back and a rerun finishes', async () => {
      await addTenant('sigkill', 30);
      await seed(
        'sigkill',
        [90, 80, 70, 60, 50, 1].map((d) => d * DAY),
      );
      const lock = await block('sigkill', 3);
      const child = spawnTs('migrations/src/cli.ts', { ...env, DATABASE_URL: retentionUrl }, [
        'audit',
        'retention',
        '--tenant',
        'sigkill',
        '--batch-size',
        '2',
      ]);
      try {
        await waitingRetentionBackend();
        child.child.kill('SIGKILL');
        expect(await child.exited).to.equal('SIGKILL');
      } finally {
        child.child.kill('SIGKILL');
        await lock.query('COMMIT');
        await lock.end();
      }
      // The orphaned backend finishes its statement, then finds its client gone and rolls back.
      for (let i = 0; i < 100; i++) {
        const left = await superuser(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND state <> 'idle'`,
          [plane.db.roles.retention],
        );
        if ((left.rows[0] as { n: number }).n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }

      expect(await kept('sigkill')).to.deep.equal(['r2', 'r3', 'r4', 'r5']);
      expect((await chainRow('sigkill')).checkpoint).to.equal(2);
      await expectValid('sigkill');

      const outcome = await cli(['audit', 'retention', '--tenant', 'sigkill']);
      expect(outcome.code, outcome.stderr).to.equal(0);
      expect(await kept('sigkill')).to.deep.equal(['r5']);
      expect((await cli(['audit', 'verify', 'sigkill'])).code).to.equal(0);
    });
  });

  describe('races', () => {
    it('when two runs for the same tenant overlap, each record goes once and the chain verifies', async () => {
      await addTenant('twin', 30);
      // 20 records from 49.5 to 30.5 days old, then 20 from 29.5 to 10.5 days old.
      await seed(
        'twin',
        Array.from({ length: 40 }, (_, i) => (50 - i) * DAY - DAY / 2),
      );

      const runs = await Promise.all([
        enforceAuditRetention(retentionDb, { slug: 'twin' }, { batchSize: 3 }),
        enforceAuditRetention(retentionDb, { slug: 'twin' }, { batchSize: 5 }),
        cli(['audit', 'retention', '--tenant', 'twin', '--batch-size', '2']),
      ]);

      expect(runs[0].failed).to.deep.equal([]);
      expect(runs[1].failed).to.deep.equal([]);
      expect(runs[2].code, runs[2].stderr).to.equal(0);
      expect(await kept('twin')).to.deep.equal(Array.from({ length: 20 }, (_, i) => `r${20 + i}`));
      expect((await chainRow('twin')).checkpoint).to.equal(20);
      await expectValid('twin');
    });

    it('when the service appends while retention runs, no append fails and the chain verifies', async () => {
      await addTenant('busy', 30);
      await seed(
        'busy',
        Array.from({ length: 30 }, () => 60 * DAY),
      );

      const appends = (async () => {
        for (let i = 0; i < 30; i++) {
          await recordAuditSeparately(app, tenants.busy!, {
            action: 'organization.updated',
            outcome: 'success',
            resourceId: `new${i}`,
          });
        }
      })();
      const run = await enforceAuditRetention(retentionDb, { slug: 'busy' }, { batchSize: 1 });
      await appends;

      expect(run.failed).to.deep.equal([]);
      expect(run.done[0]?.deleted).to.equal(30);
      expect(await kept('busy')).to.deep.equal(Array.from({ length: 30 }, (_, i) => `new${i}`));
      await expectValid('busy');
    });

    it('when a tenant is deleted while a --all run is under way, the run skips it and succeeds', async () => {
      await addTenant('aaa-first', 30);
      await addTenant('aab-gone', 30);
      await seed(
        'aaa-first',
        [60, 50, 1].map((d) => d * DAY),
      );
      await seed(
        'aab-gone',
        [60, 1].map((d) => d * DAY),
      );
      const lock = await block('aaa-first', 2);
      const running = enforceAuditRetention(retentionDb, { all: true }, { batchSize: 1 });
      try {
        // The run has listed the tenants; delete the second before it gets there.
        await waitingRetentionBackend();
        await deprovision(plane.db, 'aab-gone', 'delete');
        delete tenants['aab-gone'];
      } finally {
        await lock.query('COMMIT');
        await lock.end();
      }
      const run = await running;

      expect(run.failed, JSON.stringify(run.failed)).to.deep.equal([]);
      expect(run.done.map((r) => r.tenant)).not.to.include('aab-gone');
      expect(await kept('aaa-first')).to.deep.equal(['r2']);
    });

    it('when a tenant is retained before a run gets to it, the run leaves its records alone', async () => {
      await addTenant('aac-kept', 30);
      await seed(
        'aac-kept',
        [60, 1].map((d) => d * DAY),
      );
      await addTenant('aaa-slow', 30);
      await seed(
        'aaa-slow',
        [60, 50, 1].map((d) => d * DAY),
      );
      const lock = await block('aaa-slow', 2);
      const running = enforceAuditRetention(retentionDb, { all: true }, { batchSize: 1 });
      try {
        await waitingRetentionBackend();
        await deprovision(plane.db, 'aac-kept', 'retain');
      } finally {
        await lock.query('COMMIT');
        await lock.end();
      }
      const run = await running;

      expect(run.failed, JSON.stringify(run.failed)).to.deep.equal([]);
      expect(run.done.map((r) => r.tenant)).not.to.include('aac-kept');
      expect(await kept('aac-kept')).to.deep.equal(['r0', 'r1']);
    });
  });

  describe('the edge of the window', () => {
    it('with a retention of 1 day, a record a second older than a day goes and one a second younger stays', async () => {
      await addTenant('oneday', 1);
      await seed('oneday', [DAY + 1_000, DAY - 1_000]);

      const run = await enforceAuditRetention(retentionDb, { slug: 'oneday' });

      expect(run.done[0]).to.deep.include({ deleted: 1, retentionDays: 1 });
      expect(await kept('oneday')).to.deep.equal(['r1']);
      await expectValid('oneday');
    });

    it('a day is 24 hours whatever the time zone of the login, even across a DST change', async () => {
      // A window that crosses a change of New York's offset, whenever the test runs.
      const offset = (at: number): string =>
        new Intl.DateTimeFormat('en-US', {
          timeZone: 'America/New_York',
          timeZoneName: 'shortOffset',
        })
          .formatToParts(new Date(at))
          .find((p) => p.type === 'timeZoneName')!.value;
      const now = Date.now();
      const days = Array.from({ length: 200 }, (_, i) => i + 1).find(
        (d) => offset(now - d * DAY) !== offset(now),
      )!;
      await addTenant('dst', days);
      await seed('dst', [days * DAY + 20 * MINUTE, days * DAY - 20 * MINUTE]);
      await superuser(`ALTER ROLE ${plane.db.roles.retention} SET timezone = 'America/New_York'`);
      try {
        const outcome = await cli(['audit', 'retention', '--tenant', 'dst']);

        expect(outcome.code, outcome.stderr).to.equal(0);
        const run = JSON.parse(outcome.stdout) as { done: { cutoff: string }[] };
        const cutoff = Date.parse(run.done[0]!.cutoff);
        expect(Math.abs(cutoff - (Date.now() - days * DAY))).to.be.lessThan(5 * MINUTE);
        expect(await kept('dst')).to.deep.equal(['r1']);
      } finally {
        await superuser(`ALTER ROLE ${plane.db.roles.retention} RESET timezone`);
      }
    });

    it('when every record is older than the window, all go, and the next append still chains', async () => {
      await addTenant('wipe', 7);
      await seed(
        'wipe',
        [30, 20, 10].map((d) => d * DAY),
      );

      const run = await enforceAuditRetention(retentionDb, { slug: 'wipe' });
      await seed('wipe', [0], 'n');

      expect(run.done[0]).to.deep.include({ deleted: 3 });
      expect(run.done[0]?.checkpoint.sequence).to.equal(3);
      expect(await kept('wipe')).to.deep.equal(['n0']);
      await expectValid('wipe');
    });
  });

  describe('a chain already broken', () => {
    it('when the owner edited an old record, retention refuses to remove the evidence', async () => {
      await addTenant('launder', 30);
      await seed(
        'launder',
        [60, 50, 40, 1].map((d) => d * DAY),
      );
      await superuser(`
        SET session_replication_role = replica;
        UPDATE ${tenants.launder!.schema}.audit_events SET outcome = 'failure' WHERE sequence = 2;
      `);

      const outcome = await cli(['audit', 'retention', '--tenant', 'launder']);

      expect(outcome.code).to.equal(1);
      expect(outcome.stderr).to.contain('launder').and.to.contain('record 2');
      expect(await kept('launder')).to.deep.equal(['r0', 'r1', 'r2', 'r3']);
      const report = await verifyTenantAudit(retentionDb, 'launder');
      expect(report.problem).to.deep.include({ code: 'RECORD_ALTERED', sequence: 2 });
    });

    it('when the owner removed the first record, retention refuses to hide the gap', async () => {
      await addTenant('gap', 30);
      await seed(
        'gap',
        [60, 50, 1].map((d) => d * DAY),
      );
      await superuser(`
        SET session_replication_role = replica;
        DELETE FROM ${tenants.gap!.schema}.audit_events WHERE sequence = 1;
      `);

      const run = await enforceAuditRetention(retentionDb, { slug: 'gap' });

      expect(run.failed.map((f) => f.tenant)).to.deep.equal(['gap']);
      expect(await kept('gap')).to.deep.equal(['r1', 'r2']);
    });
  });

  describe('verify', () => {
    it('on an empty chain, it is valid with nothing checked', async () => {
      await addTenant('empty');

      const outcome = await cli(['audit', 'verify', 'empty']);

      expect(outcome.code, outcome.stderr).to.equal(0);
      expect(JSON.parse(outcome.stdout)).to.deep.include({ valid: true, checked: 0 });
    });

    it('when the owner deletes the chain row after retention, verify fails naming the first record', async () => {
      await addTenant('nochain', 30);
      await seed(
        'nochain',
        [60, 50, 1].map((d) => d * DAY),
      );
      await enforceAuditRetention(retentionDb, { slug: 'nochain' });
      await superuser(`
        SET session_replication_role = replica;
        DELETE FROM ${tenants.nochain!.schema}.audit_chain;
      `);

      const outcome = await cli(['audit', 'verify', 'nochain']);

      expect(outcome.code).to.equal(1);
      expect(outcome.stderr).to.contain('DRIFT_DETECTED');
      const report = JSON.parse(outcome.stdout) as { valid: boolean; problem: object };
      expect(report.problem).to.deep.include({ code: 'MISSING_RECORDS', sequence: 1 });
    });

    it('when the owner edits the checkpoint hash, verify reports the first kept record', async () => {
      await addTenant('badhash', 30);
      await seed(
        'badhash',
        [60, 50, 1].map((d) => d * DAY),
      );
      await enforceAuditRetention(retentionDb, { slug: 'badhash' });
      await superuser(
        `UPDATE ${tenants.badhash!.schema}.audit_chain SET checkpoint_hash = sha256('x')`,
      );

      const report = await verifyTenantAudit(retentionDb, 'badhash');

      expect(report.valid).to.equal(false);
      expect(report.problem).to.deep.include({ code: 'BROKEN_LINK', sequence: 3 });
    });

    it('when the owner moves the checkpoint forward over kept records, verify does not pass', async () => {
      await addTenant('hidden', 30);
      await seed(
        'hidden',
        [60, 1, 1, 1].map((d) => d * DAY),
      );
      await enforceAuditRetention(retentionDb, { slug: 'hidden' });
      const schema = tenants.hidden!.schema;
      // Records 2 and 3 are still there; the checkpoint claims they were removed.
      await superuser(`
        UPDATE ${schema}.audit_chain c
           SET checkpoint_sequence = 3, checkpoint_hash = e.hash, checkpoint_at = e.occurred_at
          FROM ${schema}.audit_events e WHERE e.sequence = 3;
      `);

      const report = await verifyTenantAudit(retentionDb, 'hidden');

      expect(report.valid).to.equal(false);
      expect(report.problem).to.deep.include({ code: 'RECORDS_BEHIND_CHECKPOINT', sequence: 2 });
      const outcome = await cli(['audit', 'verify', 'hidden']);
      expect(outcome.code).to.equal(1);
      expect(outcome.stderr).to.contain('DRIFT_DETECTED').and.to.contain('record 2');
    });

    it('when the login cannot read the audit tables, it exits 1 with a coded reason', async () => {
      const password = randomBytes(12).toString('hex');
      const role = `${plane.db.roles.owner}_nosy`;
      await superuser(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
      // It may read the registry, not the tenant's schema.
      await superuser(`GRANT USAGE ON SCHEMA platform TO ${role}`);
      await superuser(`GRANT SELECT ON platform.tenants TO ${role}`);
      await addTenant('private');

      const outcome = await cli(
        ['audit', 'verify', 'private'],
        loginUrl(plane.database.url, role, password),
      );

      expectRefused(outcome, 'MIGRATION_FAILED');
      // Without USAGE on the schema, PostgreSQL does not find the table: the reason is shown.
      expect(outcome.stderr).to.match(/cannot verify the audit chain of private: \S+/);
    });
  });

  describe('the command line', () => {
    before(async () => {
      if (!tenants.cut) await addTenant('cut', 30);
    });

    const refusals: [string, string[], string][] = [
      ['an unknown tenant', ['audit', 'retention', '--tenant', 'nobody'], 'TENANT_NOT_PROVISIONED'],
      ['an invalid slug', ['audit', 'retention', '--tenant', 'Bad_Slug'], 'INVALID_TENANT_SLUG'],
      ['an invalid slug to verify', ['audit', 'verify', '../etc'], 'INVALID_TENANT_SLUG'],
      ['an empty slug', ['audit', 'retention', '--tenant', ''], 'INVALID_TENANT_SLUG'],
      ['--tenant without a value', ['audit', 'retention', '--tenant'], 'INVALID_ARGUMENTS'],
      [
        'both --tenant and --all',
        ['audit', 'retention', '--tenant', 'cut', '--all'],
        'INVALID_ARGUMENTS',
      ],
      [
        'a negative batch size',
        ['audit', 'retention', '--all', '--batch-size', '-5'],
        'INVALID_ARGUMENTS',
      ],
      [
        'a zero batch size',
        ['audit', 'retention', '--all', '--batch-size', '0'],
        'INVALID_ARGUMENTS',
      ],
      [
        'a fractional batch size',
        ['audit', 'retention', '--all', '--batch-size', '2.5'],
        'INVALID_ARGUMENTS',
      ],
      [
        'a huge batch size',
        ['audit', 'retention', '--all', '--batch-size', '1e9'],
        'INVALID_ARGUMENTS',
      ],
      [
        'a hexadecimal batch size',
        ['audit', 'retention', '--all', '--batch-size', '0x10'],
        'INVALID_ARGUMENTS',
      ],
      [
        '--batch-size without a value',
        ['audit', 'retention', '--all', '--batch-size'],
        'INVALID_ARGUMENTS',
      ],
      [
        'an empty batch size',
        ['audit', 'retention', '--all', '--batch-size', ''],
        'INVALID_ARGUMENTS',
      ],
      [
        'a misspelt flag',
        ['audit', 'retention', '--all', '--batchsize', '10'],
        'INVALID_ARGUMENTS',
      ],
      ['an extra argument', ['audit', 'verify', 'cut', 'extra'], 'INVALID_ARGUMENTS'],
      ['verify with --tenant', ['audit', 'verify', '--tenant', 'cut'], 'INVALID_ARGUMENTS'],
      ['an unknown audit command', ['audit', 'purge', '--all'], 'INVALID_ARGUMENTS'],
      ['no audit command', ['audit'], 'INVALID_ARGUMENTS'],
    ];
    for (const [what, args, code] of refusals) {
      it(`when given ${what}, it exits 1 with ${code} and deletes nothing`, async () => {
        const before = await kept('cut');

        expectRefused(await cli(args), code);
        expect(await kept('cut')).to.deep.equal(before);
      });
    }
  });
});
