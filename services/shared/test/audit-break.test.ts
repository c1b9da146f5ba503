import { expect } from 'chai';
import pg from 'pg';
import { ConnectionError, ForeignKeyConstraintError, QueryTypes, Sequelize } from 'sequelize';
import {
  AuditErrorCode,
  TenancyErrorCode,
  recordAudit,
  recordAuditSeparately,
  sealAudit,
  runWithRequestContext,
  startService,
  tenantRoute,
  verifyAuditChain,
  withTenantTransaction,
  type TenantContext,
} from '@vextrus/shared';
import {
  createAuditPlane,
  failure,
  pgError,
  sealedEvents,
  type AuditPlane,
} from './audit-support.js';

interface StoredEvent {
  sequence: string;
  action: string;
  actor_user_id: string | null;
  actor_roles: string[];
  actor_system: string | null;
  client_address: string | null;
  user_agent: string | null;
  request_id: string | null;
  resource_type: string | null;
  resource_id: string | null;
  changes: Record<string, unknown> | null;
  details: Record<string, unknown> | null;
}

/** What a pooled connection looks like between requests; every field must be back to normal. */
interface ConnectionState {
  tenant: string | null;
  role: string;
  path: string;
  inTransaction: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('audit write path under attack: literals, odd call sites, failing commits', function () {
  this.timeout(60_000);
  let t: AuditPlane;
  let acme: TenantContext;
  let other: TenantContext;
  /** A pool of one connection, so that the next request gets the connection a failure left. */
  let single: Sequelize;
  let clean: ConnectionState;

  before(async () => {
    t = await createAuditPlane('audit_break', ['acme', 'other', 'fresh']);
    acme = t.tenants.acme!;
    other = t.tenants.other!;
    single = new Sequelize(t.plane.appUrl, { logging: false, pool: { max: 1, acquire: 5_000 } });
    // A canary the hostile values would have to reach, and a table with a deferred foreign key.
    await t.superuser(`
      CREATE TABLE ${acme.schema}.break_canary (id int PRIMARY KEY);
      INSERT INTO ${acme.schema}.break_canary VALUES (1);
      CREATE TABLE ${acme.schema}.break_parents (id int PRIMARY KEY);
      CREATE TABLE ${acme.schema}.break_children (
        id int PRIMARY KEY,
        parent_id int REFERENCES ${acme.schema}.break_parents DEFERRABLE INITIALLY DEFERRED);
      GRANT SELECT, INSERT ON ${acme.schema}.break_canary, ${acme.schema}.break_parents,
        ${acme.schema}.break_children TO ${acme.role};
    `);
    clean = await state(single);
  });
  after(async () => {
    await single.close();
    await t.close();
  });

  /** The state of the connection the pool of `sequelize` gives next, outside any transaction. */
  async function state(sequelize: Sequelize): Promise<ConnectionState> {
    const [row] = await sequelize.query<{
      tenant: string | null;
      role: string;
      path: string;
      in_transaction: boolean;
    }>(
      `SELECT nullif(current_setting('app.tenant_id', true), '') AS tenant,
              current_user AS role, current_setting('search_path') AS path,
              xact_start <> query_start AS in_transaction
         FROM pg_stat_activity WHERE pid = pg_backend_pid()`,
      { type: QueryTypes.SELECT },
    );
    return {
      tenant: row!.tenant,
      role: row!.role,
      path: row!.path,
      inTransaction: row!.in_transaction,
    };
  }

  async function events(tenant = acme): Promise<StoredEvent[]> {
    return sealedEvents<StoredEvent>(t.app, tenant);
  }

  async function eventsOf(action: string, tenant = acme): Promise<StoredEvent[]> {
    return (await events(tenant)).filter((e) => e.action === action);
  }

  /** How many rows of the test table `table` have the id `id` (as the superuser sees them). */
  async function rowsWithId(id: number, table = 'break_canary'): Promise<number> {
    const { rows } = await t.superuser(
      `SELECT count(*)::int AS n FROM ${acme.schema}.${table} WHERE id = $1`,
      [id],
    );
    return (rows[0] as { n: number }).n;
  }

  describe('hostile values in every field', () => {
    const HOSTILE = [
      `'); DROP TABLE break_canary; --`,
      `\\'); DROP TABLE break_canary; --`,
      `E'\\x27); DROP TABLE break_canary; --`,
      `$$; DROP TABLE break_canary; $$`,
      `$tag$'; DELETE FROM break_canary; $tag$`,
      `*/ DROP TABLE break_canary; /*`,
      `-- comment\n; DROP TABLE break_canary`,
      `a\u0000'; DROP TABLE break_canary; --`,
      `\\`,
      `trailing backslash \\`,
      `\u2028line\u2029para\r\n\t\v\f`,
      `U&'\\0027'; DROP TABLE break_canary; --`,
      `'' '''`,
      `"quoted" {brace,comma} NULL`,
      `:name $1 ? ?? %s`,
      `\uDFFF lone low, lone high \uD800`,
      `emoji 😀 and combining é`,
    ];

    HOSTILE.forEach((value, index) => {
      it(`when every field holds hostile value #${index}, nothing runs and it is stored as given`, async () => {
        const action = `break.hostile_${index}`;
        const stored = value.replaceAll('\u0000', '').replace(/\uDFFF|\uD800/g, '\uFFFD');
        await runWithRequestContext(
          { reqId: value, clientIp: value.slice(0, 64), userAgent: value },
          () =>
            withTenantTransaction(t.app, acme, () =>
              recordAudit({
                action,
                outcome: 'failure',
                actor: { userId: value, roles: [value, `${value}'`, ''], system: value },
                resourceType: value,
                resourceId: value,
                changes: { before: { [value]: value }, after: { name: [value, { value }] } },
                details: { value, nested: { [`k${value}`]: value } },
              }),
            ),
        );

        expect(await rowsWithId(1)).to.equal(1);
        const [event] = await eventsOf(action);
        expect(event).to.deep.include({
          actor_user_id: stored,
          actor_roles: [stored, `${stored}'`, ''],
          actor_system: stored,
          client_address: stored.slice(0, 64),
          user_agent: stored,
          request_id: stored,
          resource_type: stored,
          resource_id: stored,
          changes: { before: { [stored]: stored }, after: { name: [stored, { value: stored }] } },
          details: { value: stored, nested: { [`k${stored}`]: stored } },
        });
      });
    });

    it('when text is very long, it is cut at the documented lengths and nothing fails', async () => {
      const long = `'\\${'x'.repeat(20_000)}😀`;
      await runWithRequestContext({ reqId: long, clientIp: long, userAgent: long }, () =>
        withTenantTransaction(t.app, acme, () =>
          recordAudit({
            action: 'break.long',
            outcome: 'success',
            actor: {
              userId: long,
              roles: [
                `${'r'.repeat(63)}😀`,
                ...Array.from({ length: 49 }, (_, i) => `${i}${long}`),
              ],
              system: long,
            },
            resourceType: long,
            resourceId: long,
            details: { long, [long]: 1 },
          }),
        ),
      );

      const [event] = await eventsOf('break.long');
      expect(event!.actor_user_id).to.equal(long.slice(0, 128));
      expect(event!.actor_roles).to.have.length(20);
      // Cut before a character that would be split, as every other text is.
      expect(event!.actor_roles[0]).to.equal('r'.repeat(63));
      expect(event!.actor_roles[1]).to.equal(`0${long}`.slice(0, 64));
      expect(event!.user_agent).to.equal(long.slice(0, 256));
      expect(event!.request_id).to.equal(long.slice(0, 128));
      expect(event!.client_address).to.equal(long.slice(0, 64));
      expect(event!.resource_type).to.equal(long.slice(0, 100));
      expect(event!.resource_id).to.equal(long.slice(0, 200));
      expect(event!.details!.long).to.equal(long.slice(0, 4096));
      expect(Object.keys(event!.details!)).to.include(long.slice(0, 4096));
    });

    it('when a text field is nothing but NUL, the record is still written (the field empty)', async () => {
      await withTenantTransaction(t.app, acme, async () => {
        await t.app.query('INSERT INTO break_canary VALUES (100)');
        await recordAudit({
          action: 'break.only_nul',
          outcome: 'success',
          actor: { userId: '\u0000', system: '\u0000\u0000' },
          resourceType: '\u0000',
          resourceId: '\u0000',
        });
      });

      const [event] = await eventsOf('break.only_nul');
      expect(event).to.deep.include({
        actor_user_id: null,
        actor_system: null,
        resource_type: null,
        resource_id: null,
      });
      expect(await rowsWithId(100)).to.equal(1);
    });

    it('when changes or details have a __proto__ key, it is stored like any other key', async () => {
      const input = JSON.parse('{"__proto__": {"polluted": "yes"}, "name": "n"}') as Record<
        string,
        unknown
      >;
      await withTenantTransaction(t.app, acme, () =>
        recordAudit({
          action: 'break.proto_key',
          outcome: 'success',
          changes: { after: input },
          details: input,
        }),
      );

      const [event] = await eventsOf('break.proto_key');
      const expected = JSON.parse('{"__proto__": {"polluted": "yes"}, "name": "n"}') as unknown;
      expect(event!.details).to.deep.equal(expected);
      expect(event!.changes).to.deep.equal({ after: expected });
    });
  });

  describe('values that would take long to write', () => {
    it('when details hold one object twice at every level, the record stays small and is written', async () => {
      // 16 levels, each holding the level below twice: 65,536 paths to the innermost object.
      let shared: Record<string, unknown> = { leaf: 'x' };
      for (let level = 0; level < 16; level++) shared = { left: shared, right: shared };
      await withTenantTransaction(t.app, acme, () =>
        recordAudit({ action: 'break.fan_out', outcome: 'success', details: { shared } }),
      );

      const [event] = await eventsOf('break.fan_out');
      const text = JSON.stringify(event!.details);
      expect(text).to.include('[truncated]');
      expect(text.length).to.be.below(500_000);
    });
  });

  describe('odd call sites', () => {
    it('when recordAudit is called after the function returned, it fails and writes nothing', async () => {
      let late: Promise<void> | undefined;
      await withTenantTransaction(t.app, acme, async () => {
        await recordAudit({ action: 'break.on_time', outcome: 'success' });
        setTimeout(() => {
          late = recordAudit({ action: 'break.too_late', outcome: 'success' });
          late.catch(() => undefined);
        }, 50);
      });
      await sleep(150);

      // Sequelize has unbound the finished transaction from the context by then.
      const error = await failure(late!);
      expect(error.code).to.equal(AuditErrorCode.NoTransaction);
      expect(await eventsOf('break.on_time')).to.have.length(1);
      expect(await eventsOf('break.too_late')).to.have.length(0);
    });

    it('when records are made concurrently in one transaction of a schema not yet looked at, each commits once, in a chain', async () => {
      // The first records of this process in the schema: each looks for audit_append first.
      const fresh = t.tenants.fresh!;
      await withTenantTransaction(t.app, fresh, () =>
        Promise.all(
          ['a', 'b', 'c'].map((id) =>
            recordAudit({ action: 'break.concurrent', outcome: 'success', resourceId: id }),
          ),
        ),
      );

      const stored = await eventsOf('break.concurrent', fresh);
      expect(stored.map((e) => e.resource_id).sort()).to.deep.equal(['a', 'b', 'c']);
      expect(stored.map((e) => Number(e.sequence))).to.deep.equal([1, 2, 3]);
      expect((await verifyAuditChain(t.app, fresh)).valid).to.equal(true);
    });

    it('when a nested transaction of the same tenant records, the outer transaction decides', async () => {
      const error = await failure(
        withTenantTransaction(t.app, acme, async () => {
          await withTenantTransaction(t.app, acme, () =>
            recordAudit({ action: 'break.nested_undone', outcome: 'success' }),
          );
          throw new Error('the outer work fails afterwards');
        }),
      );
      expect(error.message).to.equal('the outer work fails afterwards');
      await withTenantTransaction(t.app, acme, () =>
        withTenantTransaction(t.app, acme, () =>
          recordAudit({ action: 'break.nested_kept', outcome: 'success' }),
        ),
      );

      expect(await eventsOf('break.nested_undone')).to.have.length(0);
      expect(await eventsOf('break.nested_kept')).to.have.length(1);
    });

    it('when a nested transaction of another tenant tries to record, it is refused', async () => {
      const error = await failure(
        withTenantTransaction(t.app, acme, () =>
          withTenantTransaction(t.app, other, () =>
            recordAudit({ action: 'break.cross', outcome: 'success' }),
          ),
        ),
      );
      expect(error.code).to.equal(TenancyErrorCode.NestedContext);
      expect(await eventsOf('break.cross', other)).to.have.length(0);
      expect(await eventsOf('break.cross', acme)).to.have.length(0);
    });

    it('when a plain Sequelize transaction opened inside a tenant transaction records, nothing is written outside the tenant', async () => {
      const error = await failure(
        withTenantTransaction(t.app, acme, () =>
          // No `transaction: outer`: a new transaction on another connection, without the
          // tenant's settings, while the tenant context is still set.
          t.app.transaction(() => recordAudit({ action: 'break.stray', outcome: 'success' })),
        ),
      );

      expect(error.code).to.equal(AuditErrorCode.WriteFailed);
      expect(pgError(error).code).to.equal('42883');
      expect(await eventsOf('break.stray', acme)).to.have.length(0);
      expect(await eventsOf('break.stray', other)).to.have.length(0);
      expect(await state(t.app)).to.deep.include({ tenant: null, inTransaction: false });
    });

    it('when a savepoint records and commits, the record commits with the outer transaction', async () => {
      await withTenantTransaction(t.app, acme, async (outer) => {
        await t.app.transaction({ transaction: outer }, () =>
          recordAudit({ action: 'break.savepoint_kept', outcome: 'success' }),
        );
      });
      expect(await eventsOf('break.savepoint_kept')).to.have.length(1);
    });

    it('when an outer savepoint rolls back, the records of the savepoints inside it go too', async () => {
      await withTenantTransaction(t.app, acme, async (outer) => {
        await t.app
          .transaction({ transaction: outer }, async (middle) => {
            await t.app.transaction({ transaction: middle }, () =>
              recordAudit({ action: 'break.inner_of_undone', outcome: 'success' }),
            );
            throw new Error('the middle step fails');
          })
          .catch(() => undefined);
        await t.app.transaction({ transaction: outer }, async (middle) => {
          await t.app.transaction({ transaction: middle }, () =>
            recordAudit({ action: 'break.inner_of_kept', outcome: 'success' }),
          );
        });
      });

      expect(await eventsOf('break.inner_of_undone')).to.have.length(0);
      expect(await eventsOf('break.inner_of_kept')).to.have.length(1);
    });

    it('when a statement failed and its error was caught, the record and change both roll back', async () => {
      const error = await failure(
        withTenantTransaction(single, acme, async () => {
          await single.query('INSERT INTO break_canary VALUES (200)');
          await recordAudit({ action: 'break.aborted', outcome: 'success' });
          await single.query('SELECT 1/0').catch(() => undefined);
        }),
      );

      expect(error.code).to.equal(TenancyErrorCode.RolledBack);
      expect(await eventsOf('break.aborted')).to.have.length(0);
      expect(await rowsWithId(200)).to.equal(0);
      expect(await state(single)).to.deep.equal(clean);
    });

    it('when the pool has one connection, records and the state between requests stay clean', async () => {
      for (let i = 0; i < 5; i++) {
        await withTenantTransaction(single, i % 2 === 0 ? acme : other, () =>
          recordAudit({ action: 'break.single_pool', outcome: 'success' }),
        );
        expect(await state(single)).to.deep.equal(clean);
      }
      expect(await eventsOf('break.single_pool', acme)).to.have.length(3);
      expect(await eventsOf('break.single_pool', other)).to.have.length(2);
    });
  });

  describe('a COMMIT that fails for another reason than the record', () => {
    it('when a deferred foreign key fails at COMMIT, the caller gets that error and nothing stays', async () => {
      const error = await failure(
        withTenantTransaction(single, acme, async () => {
          await single.query('INSERT INTO break_children VALUES (1, 999)');
          await recordAudit({ action: 'break.deferred', outcome: 'success' });
        }),
      );

      expect(error).to.be.instanceOf(ForeignKeyConstraintError);
      expect(pgError(error).code).to.equal('23503');
      expect(await eventsOf('break.deferred')).to.have.length(0);
      expect(await rowsWithId(1, 'break_children')).to.equal(0);
      expect(await state(single)).to.deep.equal(clean);
    });

    it('when the record fails and a deferred foreign key would too, the record is blamed', async () => {
      await t.superuser(
        `ALTER TABLE ${acme.schema}.break_canary ADD CONSTRAINT break_no_999 CHECK (id <> 999)`,
      );
      // Only the tenant's role may call it (2026120426-audit-sealing).
      await t.superuser(`REVOKE EXECUTE ON FUNCTION ${acme.schema}.audit_append(timestamptz, text,
        text[], text, text, text, text, text, text, text, text, jsonb, jsonb) FROM ${acme.role}`);
      try {
        const error = await failure(
          withTenantTransaction(single, acme, async () => {
            await single.query('INSERT INTO break_children VALUES (2, 999)');
            await recordAudit({ action: 'break.both_fail', outcome: 'success' });
          }),
        );
        expect(error.code).to.equal(AuditErrorCode.WriteFailed);
        expect(pgError(error).code).to.equal('42501');
        // The error goes to the logs: it names the statement, never the record's values.
        expect(JSON.stringify(error.cause)).to.include('audit_append').and.not.include('both_fail');
        expect(await state(single)).to.deep.equal(clean);
      } finally {
        await t.superuser(`GRANT EXECUTE ON FUNCTION ${acme.schema}.audit_append(timestamptz, text,
          text[], text, text, text, text, text, text, text, text, jsonb, jsonb) TO ${acme.role}`);
        await t.superuser(`ALTER TABLE ${acme.schema}.break_canary DROP CONSTRAINT break_no_999`);
      }
      expect(await rowsWithId(2, 'break_children')).to.equal(0);
    });

    it('when the connection is killed before the COMMIT, nothing stays and the error says so', async () => {
      const error = await failure(
        withTenantTransaction(single, acme, async () => {
          await single.query('INSERT INTO break_canary VALUES (300)');
          await recordAudit({ action: 'break.killed', outcome: 'success' });
          const [row] = await single.query<{ pid: number }>('SELECT pg_backend_pid() AS pid', {
            type: QueryTypes.SELECT,
          });
          await t.superuser('SELECT pg_terminate_backend($1)', [row!.pid]);
          await sleep(200);
        }),
      );

      expect(error.code).not.to.equal(AuditErrorCode.WriteFailed);
      expect(error).to.be.instanceOf(ConnectionError);
      expect(await eventsOf('break.killed')).to.have.length(0);
      expect(await rowsWithId(300)).to.equal(0);
      expect(await state(single)).to.deep.equal(clean);
    });

    it('when a seal is killed while it waits for the chain lock, its records wait for the next', async () => {
      await withTenantTransaction(t.app, acme, () =>
        recordAudit({ action: 'break.killed_sealing', outcome: 'success' }),
      );
      // Another session holds the tenant's chain row, so the seal waits on it.
      const holder = new pg.Client({ connectionString: t.plane.database.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query(
          `SELECT 1 FROM ${acme.schema}.audit_chain WHERE tenant_id = $1 FOR UPDATE`,
          [acme.tenantId],
        );
        const victim = failure(sealAudit(single, acme));
        let killed = false;
        for (let tries = 0; tries < 50 && !killed; tries++) {
          await sleep(50);
          const { rows } = await holder.query(
            `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND query LIKE '%audit_seal%'`,
          );
          killed = rows.length > 0;
        }
        expect(killed).to.equal(true);
        const error = await victim;

        expect(pgError(error).code).to.equal('57P01');
      } finally {
        await holder.query('ROLLBACK');
        await holder.end();
      }
      expect(await eventsOf('break.killed_sealing')).to.have.length(1);
      expect(await state(single)).to.deep.equal(clean);
      expect((await verifyAuditChain(t.app, acme)).valid).to.equal(true);
    });

    it('when a service’s connection is killed before the COMMIT, the client gets 503, not 500', async () => {
      const service = await startService(
        {
          name: 'audit-break',
          defaultPort: 0,
          routes: (app, runtime) => {
            const db = runtime.sequelize;
            app.post(
              '/killed',
              (_req, res, next) => {
                res.locals.tenant = { ...acme, slug: 'acme', status: 'active' };
                next();
              },
              tenantRoute(db, async () => {
                await db.query('INSERT INTO break_canary VALUES (600)');
                await recordAudit({ action: 'break.killed_service', outcome: 'success' });
                await t.superuser(
                  'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = $1',
                  [
                    (
                      await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid', {
                        type: QueryTypes.SELECT,
                      })
                    )[0]!.pid,
                  ],
                );
                await sleep(200);
                return { status: 201, body: { created: true } };
              }),
            );
          },
        },
        {
          env: {
            DATABASE_URL: t.plane.appUrl,
            DATABASE_POOL_MAX: '1',
            PORT: '0',
            HOST: '127.0.0.1',
            LOG_LEVEL: 'silent',
          },
        },
      );
      try {
        const response = await fetch(`${service.url}/killed`, { method: 'POST' });
        const body = (await response.json()) as { code?: string };

        expect(response.status).to.equal(503);
        expect(response.headers.get('retry-after')).to.equal('5');
        expect(body.code).not.to.equal('INTERNAL');
        expect(await state(service.runtime.sequelize)).to.deep.equal(clean);
      } finally {
        await service.stop();
      }
      expect(await eventsOf('break.killed_service')).to.have.length(0);
      expect(await rowsWithId(600)).to.equal(0);
    });

    it('when REPEATABLE READ meets a concurrent record, both commit (a record leaves the chain alone)', async () => {
      await single.query("SET default_transaction_isolation = 'repeatable read'");
      try {
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        const slow = withTenantTransaction(single, acme, async () => {
          await single.query('INSERT INTO break_canary VALUES (400)');
          await recordAudit({ action: 'break.serial_slow', outcome: 'success' });
          await gate;
        });
        await sleep(100);
        await withTenantTransaction(t.app, acme, () =>
          recordAudit({ action: 'break.serial_fast', outcome: 'success' }),
        );
        await sealAudit(t.app, acme);
        release();
        await slow;

        expect(await eventsOf('break.serial_slow')).to.have.length(1);
        expect(await eventsOf('break.serial_fast')).to.have.length(1);
        expect(await rowsWithId(400)).to.equal(1);
      } finally {
        await single.query('RESET default_transaction_isolation').catch(() => undefined);
      }
      expect(await state(single)).to.deep.equal(clean);
      expect((await verifyAuditChain(t.app, acme)).valid).to.equal(true);
    });
  });

  describe('records of refusals', () => {
    it('when a transaction that already recorded also records a refusal separately, both commit and the refusal outlives a rollback', async () => {
      const error = await failure(
        withTenantTransaction(t.app, acme, async () => {
          await recordAudit({ action: 'break.queued_first', outcome: 'success' });
          await recordAuditSeparately(t.app, acme, {
            action: 'break.separate_after',
            outcome: 'denied',
          });
          throw new Error('the caller’s work fails');
        }),
      );
      expect(error.message).to.equal('the caller’s work fails');
      await withTenantTransaction(t.app, acme, async () => {
        await recordAudit({ action: 'break.queued_first', outcome: 'success' });
        await recordAuditSeparately(t.app, acme, {
          action: 'break.separate_after',
          outcome: 'denied',
        });
      });

      expect(await eventsOf('break.queued_first')).to.have.length(1);
      expect(await eventsOf('break.separate_after')).to.have.length(2);
      expect((await verifyAuditChain(t.app, acme)).valid).to.equal(true);
    });

    it('when the caller holds the only pooled connection, the separate record waits, then fails as unavailable', async () => {
      const tight = new Sequelize(t.plane.appUrl, {
        logging: false,
        pool: { max: 1, acquire: 1_000 },
      });
      try {
        const error = await failure(
          withTenantTransaction(tight, acme, () =>
            recordAuditSeparately(tight, acme, { action: 'break.starved', outcome: 'denied' }),
          ),
        );
        expect(error.name).to.equal('SequelizeConnectionAcquireTimeoutError');
        expect(await state(tight)).to.deep.equal(clean);
      } finally {
        await tight.close();
      }
      expect(await eventsOf('break.starved')).to.have.length(0);
    });

    it('when a savepoint recorded and the transaction then records a refusal separately, neither waits for the other', async () => {
      const run = withTenantTransaction(t.app, acme, async (outer) => {
        await t.app.transaction({ transaction: outer }, () =>
          recordAudit({ action: 'break.in_savepoint', outcome: 'success' }),
        );
        await recordAuditSeparately(t.app, acme, {
          action: 'break.separate_in_savepoint_tx',
          outcome: 'denied',
        });
      });
      const outcome = await Promise.race([
        run.then(
          () => 'committed',
          (err: Error) => `failed: ${err.message}`,
        ),
        sleep(5_000).then(() => 'still waiting after 5 s'),
      ]);
      if (outcome !== 'committed') {
        // Free the sessions that wait for each other, so that the other tests can go on.
        await t.superuser(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND query LIKE '%audit_append%'
              AND pid <> pg_backend_pid()`,
        );
        await run.catch(() => undefined);
      }

      expect(outcome).to.equal('committed');
      expect(await eventsOf('break.in_savepoint')).to.have.length(1);
      expect(await eventsOf('break.separate_in_savepoint_tx')).to.have.length(1);
    });

    it('when the tenant role was revoked, the separate record fails as TENANT_UNAVAILABLE and the pool stays clean', async () => {
      await t.superuser(`REVOKE ${other.role} FROM ${clean.role}`);
      try {
        const error = await failure(
          recordAuditSeparately(single, other, { action: 'break.revoked', outcome: 'denied' }),
        );
        expect(error.code).to.equal('TENANT_UNAVAILABLE');
        expect(await state(single)).to.deep.equal(clean);
      } finally {
        await t.superuser(`GRANT ${other.role} TO ${clean.role}`);
      }
      expect(await eventsOf('break.revoked', other)).to.have.length(0);
    });
  });
});
