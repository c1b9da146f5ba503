/**
 * Adversarial tests of the migrations CLI and what it runs: bad arguments, odd connection
 * settings, runs killed or timed out half-way, runs at the same time, and what the roles can do
 * afterwards, checked with real logins. Audit retention and verify have their own suite.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import pg from 'pg';
import {
  createPlane,
  loginUrl,
  runMigrationsCli,
  spawnTs,
  type CommandOutcome,
  type TestPlane,
} from '@vextrus/devkit';
import {
  LOCK_CLASS,
  databaseUrl,
  provision,
  tenantMigrations,
  verify,
  withAdvisoryLock,
} from '../src/index.js';
import { asSuperuser } from './support/retention.js';

const cli = runMigrationsCli;

/** The lines of stderr that are neither JSON log records nor the usage text after an error. */
function plainLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter(
      (line) => line.trim() !== '' && line !== 'usage:' && !/^ {2}vextrus-migrate /.test(line),
    )
    .filter((line) => {
      try {
        return typeof JSON.parse(line) !== 'object';
      } catch {
        return true;
      }
    });
}

/** Besides log records, one line on stderr: `error [CODE]: ...`; no stack trace; exit code 1. */
function expectRefusal(outcome: CommandOutcome, code: string): void {
  expect(outcome.code, outcome.stderr).to.equal(1);
  const lines = plainLines(outcome.stderr);
  expect(lines, outcome.stderr).to.have.length(1);
  expect(lines[0], outcome.stderr).to.match(new RegExp(`^error \\[${code}\\]: `));
}

/** Runs one statement on a connection of its own with the given URL. */
async function query(url: string, text: string, values?: unknown[]): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

/** The SQLSTATE (or message) a statement fails with, or 'ok'. */
async function outcomeOf(client: pg.Client, text: string): Promise<string> {
  try {
    await client.query(text);
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

describe('migrations CLI under attack', function () {
  this.timeout(180_000);
  let plane: TestPlane;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    plane = await createPlane('clibreak', { platform: false });
    const { owner, app, retention, tenantPrefix } = plane.db.roles;
    env = {
      DATABASE_URL: plane.database.url,
      VEXTRUS_OWNER_ROLE: owner,
      VEXTRUS_APP_ROLE: app,
      VEXTRUS_RETENTION_ROLE: retention,
      VEXTRUS_TENANT_ROLE_PREFIX: tenantPrefix,
    };
  });
  after(async () => plane.close());

  describe('arguments', () => {
    it('refuses an unknown flag instead of running the command without it', async () => {
      const outcome = await cli(['platform', 'up', '--dry-run'], env);

      expectRefusal(outcome, 'INVALID_ARGUMENTS');
      expect(outcome.stderr).to.contain('--dry-run');
      const [row] = (await query(plane.database.url, "SELECT to_regclass('platform.tenants') AS t"))
        .rows as { t: string | null }[];
      expect(row?.t, 'platform up ran although --dry-run was given').to.equal(null);
    });

    it('refuses extra positional arguments', async () => {
      for (const args of [
        ['platform', 'status', 'now'],
        ['roles', 'ensure', 'all'],
        ['tenants', 'up', 'acme', '--all'],
        ['tenant', 'acme', 'status', 'extra'],
      ]) {
        const outcome = await cli(args, env);
        expectRefusal(outcome, 'INVALID_ARGUMENTS');
      }
    });

    it('refuses flags a tenant command does not take', async () => {
      for (const args of [
        ['tenant', 'acme', 'provision', '--display-name', 'Acme'],
        ['tenant', 'acme', 'deprovision', '--retain', '--force'],
        ['tenant', 'acme', 'status', '--all'],
        ['tenants', 'up', '--all', '--concurency', '8'],
      ]) {
        const outcome = await cli(args, env);
        expectRefusal(outcome, 'INVALID_ARGUMENTS');
      }
    });

    it('refuses --concurrency without a plain decimal value', async () => {
      for (const value of [[], ['0x10'], ['1e1'], [' 2'], ['2.0'], ['0'], ['65']]) {
        const outcome = await cli(['tenants', 'up', '--all', '--concurrency', ...value], env);
        expectRefusal(outcome, 'INVALID_ARGUMENTS');
        expect(outcome.stderr).to.contain('--concurrency');
      }
    });

    it('refuses unknown commands and missing parts with the usage and a code', async () => {
      for (const args of [
        [],
        ['migrate'],
        ['platform'],
        ['platform', 'sideways'],
        ['tenant'],
        ['tenant', 'acme'],
        ['tenant', 'acme', 'explode'],
        ['tenant', 'acme', 'deprovision'],
        ['tenant', 'acme', 'deprovision', '--retain', '--delete'],
        ['tenant', 'acme', 'seed-admin', '--email', '--name', 'N'],
        ['tenants', 'up'],
        ['roles'],
        ['--help'],
      ]) {
        const outcome = await cli(args, env);
        expectRefusal(outcome, 'INVALID_ARGUMENTS');
        expect(outcome.stderr, args.join(' ')).to.contain('usage:');
      }
    });

    it('refuses odd tenant slugs before connecting, with one coded line', async () => {
      const odd = [
        'Acme',
        'acmé',
        'a'.repeat(41),
        "a'; DROP SCHEMA platform CASCADE; --",
        'a"b',
        'acme_co',
        '1acme',
        'acme-',
        'a--b',
        'ac me',
        'acme\n',
        '\u0430cme',
      ];
      for (const slug of odd) {
        // No database at all: the slug must be refused before any connection is tried.
        const outcome = await cli(['tenant', slug, 'provision'], {
          DATABASE_URL: 'postgres://u:p@127.0.0.1:1/none',
        });
        expectRefusal(outcome, 'INVALID_TENANT_SLUG');
      }
    });

    it('reserved words and platform-like slugs get schemas of their own', async () => {
      expect((await cli(['roles', 'ensure'], env)).code).to.equal(0);
      expect((await cli(['platform', 'up'], env)).code).to.equal(0);
      for (const slug of ['select', 'platform', 'public', 'pg-catalog']) {
        const outcome = await cli(['tenant', slug, 'provision'], env);
        expect(outcome.code, outcome.stderr).to.equal(0);
        expect(JSON.parse(outcome.stdout)).to.include({
          schema: `tenant_${slug.replace('-', '_')}`,
        });
      }
      const platformStatus = await cli(['platform', 'status'], env);
      expect(JSON.parse(platformStatus.stdout)).to.deep.include({ pending: [], unknown: [] });
      const longest = 'a'.repeat(40);
      const outcome = await cli(['tenant', longest, 'provision'], env);
      expect(outcome.code, outcome.stderr).to.equal(0);
      const verified = await cli(['tenant', longest, 'verify'], env);
      expect(JSON.parse(verified.stdout)).to.include({ clean: true });
    });

    it('a tenant role prefix too long for a 40-character slug is refused with a code', async () => {
      const outcome = await cli(['tenant', 'a'.repeat(40), 'status'], {
        ...env,
        VEXTRUS_TENANT_ROLE_PREFIX: `${'p'.repeat(30)}_`,
      });
      expectRefusal(outcome, 'INVALID_ROLE_NAME');
    });

    it('a tenant role prefix that names a platform role is refused before any change', async () => {
      const { owner, app, tenantPrefix } = plane.db.roles;
      // The plane's roles share a tag: with it as the prefix, tenant "app" would be the app role.
      const tag = tenantPrefix.slice(0, -'tenant_'.length);
      const outcomes: CommandOutcome[] = [];
      for (const slug of ['app', 'owner', 'retention']) {
        outcomes.push(
          await cli(['tenant', slug, 'provision'], { ...env, VEXTRUS_TENANT_ROLE_PREFIX: tag }),
        );
      }
      const { rows } = await query(
        plane.database.url,
        `SELECT rolname, rolcanlogin, rolcreaterole FROM pg_roles
          WHERE rolname = ANY($1) ORDER BY 1`,
        [[owner, app]],
      );
      const roles = rows as { rolname: string; rolcanlogin: boolean; rolcreaterole: boolean }[];
      const [appRow, ownerRow] = [app, owner].map((name) => roles.find((r) => r.rolname === name));
      expect(appRow, 'the application role was changed').to.deep.include({ rolcanlogin: true });
      expect(ownerRow, 'the owner role was changed').to.deep.include({
        rolcanlogin: true,
        rolcreaterole: true,
      });
      for (const outcome of outcomes) expectRefusal(outcome, 'INVALID_ROLE_NAME');
      const { rows: registered } = await query(
        plane.database.url,
        "SELECT slug FROM platform.tenants WHERE slug IN ('app', 'owner', 'retention')",
      );
      expect(registered).to.deep.equal([]);
    });

    it('one role name configured for two platform roles is refused', async () => {
      const { owner, app } = plane.db.roles;
      for (const extra of [
        { VEXTRUS_APP_ROLE: owner },
        { VEXTRUS_RETENTION_ROLE: app },
        { VEXTRUS_OWNER_ROLE: app },
      ]) {
        const outcome = await cli(['roles', 'ensure'], { ...env, ...extra });
        expectRefusal(outcome, 'INVALID_ROLE_NAME');
      }
      const { rows } = await query(
        plane.database.url,
        'SELECT rolcreaterole FROM pg_roles WHERE rolname = $1',
        [owner],
      );
      expect(rows).to.deep.equal([{ rolcreaterole: true }]);
    });

    it('a superuser named as a platform role is refused, and keeps SUPERUSER', async () => {
      const admin = `${plane.db.roles.tenantPrefix.slice(0, -'tenant_'.length)}admin`;
      await asSuperuser(plane, `CREATE ROLE ${admin} SUPERUSER`);
      try {
        for (const kind of ['OWNER', 'APP', 'RETENTION']) {
          const outcome = await cli(['roles', 'ensure'], {
            ...env,
            [`VEXTRUS_${kind}_ROLE`]: admin,
          });
          expectRefusal(outcome, 'INVALID_ROLE_NAME');
          expect(outcome.stderr).to.include('superuser');
        }
        const { rows } = await query(
          plane.database.url,
          'SELECT rolsuper FROM pg_roles WHERE rolname = $1',
          [admin],
        );
        expect(rows).to.deep.equal([{ rolsuper: true }]);
      } finally {
        await asSuperuser(plane, `DROP OWNED BY ${admin}; DROP ROLE ${admin}`);
      }
    });
  });

  describe('connection settings', () => {
    let ownerPassword: string;
    let ownerEnv: NodeJS.ProcessEnv;

    before(async () => {
      // Every character that needs percent-encoding in a URL's userinfo.
      ownerPassword = `p@ss:w/o?r#d%20 '"\\é${randomBytes(4).toString('hex')}`;
      const { owner } = plane.db.roles;
      await asSuperuser(
        plane,
        `ALTER ROLE ${owner} PASSWORD '${ownerPassword.replace(/'/g, "''")}'`,
      );
      const url = new URL(plane.database.url);
      const userinfo = `${owner}:${encodeURIComponent(ownerPassword)}`;
      ownerEnv = { ...env, DATABASE_URL: url.toString().replace(/\/\/[^@]*@/, `//${userinfo}@`) };
    });

    it('logs in with a percent-encoded password, with postgres:// and postgresql://', async () => {
      const url = ownerEnv.DATABASE_URL ?? '';
      for (const scheme of ['postgres:', 'postgresql:']) {
        const outcome = await cli(['platform', 'status'], {
          ...ownerEnv,
          DATABASE_URL: url.replace(/^postgres:/, scheme),
        });
        expect(outcome.code, outcome.stderr).to.equal(0);
      }
    });

    it('logs in with the password given apart, whatever characters it holds', async () => {
      const parsed = new URL(plane.database.url);
      const outcome = await cli(['platform', 'status'], {
        ...env,
        DATABASE_URL: '',
        DATABASE_HOST: parsed.hostname,
        DATABASE_PORT: parsed.port,
        DATABASE_USERNAME: plane.db.roles.owner,
        DATABASE_PASSWORD: ownerPassword,
        DATABASE_NAME: plane.database.name,
      });
      expect(outcome.code, outcome.stderr).to.equal(0);
    });

    it('DATABASE_PASSWORD overrides a wrong password in DATABASE_URL', async () => {
      const wrong = loginUrl(plane.database.url, plane.db.roles.owner, 'wrong');
      const outcome = await cli(['platform', 'status'], {
        ...env,
        DATABASE_URL: wrong,
        DATABASE_PASSWORD: ownerPassword,
      });
      expect(outcome.code, outcome.stderr).to.equal(0);
    });

    it('never swaps a host the URL cannot hold for localhost', () => {
      const parts = { DATABASE_USERNAME: 'u', DATABASE_PASSWORD: 'p', DATABASE_NAME: 'db' };
      for (const host of ['/var/run/postgresql', 'db host', 'db%host', 'db/host']) {
        let url: string | undefined;
        let code: string | undefined;
        try {
          url = databaseUrl({ ...parts, DATABASE_HOST: host });
        } catch (err) {
          code = (err as { code?: string }).code;
        }
        if (url !== undefined) {
          const parsed = new URL(url);
          const target = parsed.searchParams.get('host') ?? parsed.hostname;
          expect(target, `${host} became ${url}`).to.equal(host);
        } else expect(code, host).to.equal('CONFIGURATION_ERROR');
      }
    });

    it('an invalid LOG_LEVEL is one coded line, not a stack trace', async () => {
      const outcome = await cli(['platform', 'status'], { ...env, LOG_LEVEL: 'verbose' });
      expectRefusal(outcome, 'CONFIGURATION_ERROR');
      expect(outcome.stderr).to.contain('LOG_LEVEL');
    });

    it('keeps an IPv6 host, bracketed, in the URL it connects to', () => {
      for (const source of [
        { DATABASE_URL: 'postgres://u:p@[::1]:5432/db' },
        {
          DATABASE_HOST: '::1',
          DATABASE_USERNAME: 'u',
          DATABASE_PASSWORD: 'p',
          DATABASE_NAME: 'db',
        },
        { DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db', DATABASE_HOST: 'fd00::5' },
      ]) {
        const url = new URL(databaseUrl(source));
        const expected = source.DATABASE_HOST ?? '::1';
        expect(url.hostname, JSON.stringify(source)).to.equal(`[${expected}]`);
      }
    });

    it('reaches a database whose name needs percent-encoding', async () => {
      const name = `vx é-${randomBytes(3).toString('hex')}`;
      await asSuperuser(plane, `CREATE DATABASE "${name}"`);
      try {
        const url = new URL(plane.database.url);
        url.pathname = `/${encodeURIComponent(name)}`;
        const outcome = await cli(['platform', 'status'], { ...env, DATABASE_URL: url.toString() });
        expect(outcome.code, outcome.stderr).to.equal(0);
        expect(JSON.parse(outcome.stdout)).to.deep.include({ executed: [] });
      } finally {
        await asSuperuser(plane, `DROP DATABASE "${name}" WITH (FORCE)`);
      }
    });

    it('with sslmode=require, it refuses a server without TLS instead of going plaintext', async () => {
      const url = new URL(ownerEnv.DATABASE_URL ?? '');
      url.searchParams.set('sslmode', 'require');
      const viaUrl = await cli(['platform', 'status'], { ...env, DATABASE_URL: url.toString() });
      const viaVariable = await cli(['platform', 'status'], {
        ...ownerEnv,
        DATABASE_SSLMODE: 'require',
      });

      for (const outcome of [viaUrl, viaVariable]) {
        expect(outcome.code, `connected in plaintext: ${outcome.stdout}`).to.equal(1);
        expectRefusal(outcome, 'MIGRATION_FAILED');
        expect(outcome.stderr).to.contain('does not support SSL');
      }
    });

    it('refuses an unknown sslmode with a configuration error', async () => {
      const url = new URL(plane.database.url);
      url.searchParams.set('sslmode', 'prefer-not');
      const outcome = await cli(['platform', 'status'], { ...env, DATABASE_URL: url.toString() });
      expectRefusal(outcome, 'CONFIGURATION_ERROR');
    });

    it('refuses a login, an unknown database or a closed port with one coded line', async () => {
      const refused = loginUrl(plane.database.url, plane.db.roles.owner, 'not-the-password');
      const missing = new URL(plane.database.url);
      missing.pathname = '/no_such_database';
      const closed = new URL(plane.database.url);
      closed.port = '1';
      for (const url of [refused, missing.toString(), closed.toString()]) {
        for (const args of [
          ['platform', 'status'],
          ['platform', 'up'],
          ['tenant', 'acme', 'provision'],
          ['tenant', 'acme', 'seed-admin', '--email', 'a@b.test', '--name', 'A'],
          ['tenants', 'up', '--all'],
          ['roles', 'ensure'],
        ]) {
          const outcome = await cli(args, { ...env, DATABASE_URL: url });
          expect(outcome.code, `${args.join(' ')}: ${outcome.stderr}`).to.equal(1);
          const lines = plainLines(outcome.stderr);
          expect(lines, outcome.stderr).to.have.length(1);
          expect(lines[0], `${args.join(' ')}`).to.match(/^error \[[A-Z_]+\]: /);
          expect(lines[0], `${args.join(' ')}: uncoded`).to.not.contain('[UNEXPECTED]');
        }
      }
    });

    it('refuses a DATABASE_URL of another scheme or an invalid port', async () => {
      for (const extra of [
        { DATABASE_URL: 'mysql://u:p@127.0.0.1/db' },
        { DATABASE_URL: 'postgres://u:p@127.0.0.1:99999/db' },
        { DATABASE_URL: plane.database.url, DATABASE_PORT: 'abc' },
        { DATABASE_URL: plane.database.url, DATABASE_PASSWORD_FILE: '/nonexistent/secret' },
      ]) {
        const outcome = await cli(['platform', 'status'], { ...env, ...extra });
        expectRefusal(outcome, 'CONFIGURATION_ERROR');
      }
    });
  });

  describe('runs interrupted half-way', () => {
    const slug = 'halfway';

    /** Provisions the tenant's role and schema but runs none of its migrations. */
    async function bareTenant(name: string): Promise<void> {
      await provision(plane.db, name, { migrations: false });
    }

    /**
     * Holds a SHARE lock on the tenant's migration table: every migration can run its DDL but
     * blocks when it records itself, in the same transaction.
     */
    async function blockRecording(schema: string): Promise<pg.Client> {
      const blocker = new pg.Client({ connectionString: plane.database.url });
      await blocker.connect();
      await blocker.query('BEGIN');
      await blocker.query(`LOCK TABLE ${schema}.schema_migrations IN SHARE MODE`);
      return blocker;
    }

    async function waitForBlockedInsert(schema: string): Promise<number> {
      for (let i = 0; i < 200; i++) {
        const { rows } = await query(
          plane.database.url,
          `SELECT pid FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE $1`,
          [`INSERT INTO "${schema}"."schema_migrations"%`],
        );
        const pid = (rows[0] as { pid?: number } | undefined)?.pid;
        if (pid) return pid;
        await sleep(100);
      }
      throw new Error('the migration never reached its record');
    }

    async function tables(schema: string): Promise<string[]> {
      const { rows } = await query(
        plane.database.url,
        `SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations'
          ORDER BY 1`,
        [schema],
      );
      return rows.map((r: { tablename: string }) => r.tablename);
    }

    it('killed with SIGKILL mid-migration: nothing half-applied, the next run finishes', async () => {
      await bareTenant(slug);
      const schema = `tenant_${slug}`;
      const blocker = await blockRecording(schema);
      const run = spawnTs('migrations/src/cli.ts', { ...env, LOG_LEVEL: 'warn' }, [
        'tenant',
        slug,
        'up',
      ]);
      try {
        await waitForBlockedInsert(schema);
        run.child.kill('SIGKILL');
        await run.exited;
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      expect(await tables(schema), 'a migration outlived its kill').to.deep.equal([]);
      const status = await cli(['tenant', slug, 'status'], env);
      expect(JSON.parse(status.stdout)).to.deep.include({ executed: [] });

      const again = await cli(['tenant', slug, 'provision'], env);
      expect(again.code, again.stderr).to.equal(0);
      expect((await verify(plane.db, slug)).clean).to.equal(true);
    });

    it('its migration backend terminated: exit 1, nothing recorded, the next run finishes', async () => {
      const name = 'terminated';
      await bareTenant(name);
      const schema = `tenant_${name}`;
      const blocker = await blockRecording(schema);
      const run = cli(['tenant', name, 'up'], env);
      let outcome: CommandOutcome;
      try {
        const pid = await waitForBlockedInsert(schema);
        await query(plane.database.url, 'SELECT pg_terminate_backend($1)', [pid]);
        outcome = await run;
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      expectRefusal(outcome, 'MIGRATION_FAILED');
      expect(await tables(schema)).to.deep.equal([]);

      const again = await cli(['tenant', name, 'provision'], env);
      expect(again.code, again.stderr).to.equal(0);
      expect((await verify(plane.db, name)).clean).to.equal(true);
    });

    it('its lock session terminated mid-run: it does not report success', async () => {
      const name = 'lostlock';
      await bareTenant(name);
      const schema = `tenant_${name}`;
      const blocker = await blockRecording(schema);
      const run = cli(['tenant', name, 'up'], env);
      try {
        await waitForBlockedInsert(schema);
        const { rows } = await query(
          plane.database.url,
          `SELECT l.pid FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int4::oid
              AND l.objid = hashtext($2)::oid`,
          [LOCK_CLASS, `tenant:${name}`],
        );
        expect(rows).to.have.length(1);
        await query(plane.database.url, 'SELECT pg_terminate_backend($1)', [
          (rows[0] as { pid: number }).pid,
        ]);
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      const outcome = await run;
      // The migrations may have finished; without its lock the run cannot vouch for them.
      expectRefusal(outcome, 'MIGRATION_FAILED');
      const again = await cli(['tenant', name, 'provision'], env);
      expect(again.code, again.stderr).to.equal(0);
      expect((await verify(plane.db, name)).clean).to.equal(true);
    });

    it('deprovision --delete killed mid-way: access stays revoked, running it again ends it', async () => {
      const name = 'halfdeleted';
      await provision(plane.db, name);
      const schema = `tenant_${name}`;
      const blocker = await blockRecording(schema);
      const run = spawnTs('migrations/src/cli.ts', { ...env, LOG_LEVEL: 'warn' }, [
        'tenant',
        name,
        'deprovision',
        '--delete',
      ]);
      try {
        for (let i = 0; i < 200; i++) {
          const { rows } = await query(
            plane.database.url,
            `SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`,
            [`DELETE FROM "${schema}"."schema_migrations"%`],
          );
          if (rows.length > 0) break;
          await sleep(100);
        }
        run.child.kill('SIGKILL');
        await run.exited;
      } finally {
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      const report = await verify(plane.db, name);
      expect(report.status).to.equal('deleting');
      const { rows } = await query(plane.database.url, 'SELECT pg_has_role($1, $2, $3) AS has', [
        plane.db.roles.app,
        `${plane.db.roles.tenantPrefix}${name}`,
        'USAGE',
      ]);
      expect(rows[0]).to.deep.equal({ has: false });
      const up = await cli(['tenants', 'up', '--all'], env);
      expect(up.code, up.stderr).to.equal(0);
      const migrated = (JSON.parse(up.stdout) as { migrated: { slug: string }[] }).migrated;
      expect(migrated.map((m) => m.slug)).to.not.include(name);

      const again = await cli(['tenant', name, 'deprovision', '--delete'], env);
      expect(again.code, again.stderr).to.equal(0);
      const after = await verify(plane.db, name);
      expect(after.issues.map((i) => i.code).sort()).to.deep.equal([
        'NOT_REGISTERED',
        'ROLE_MISSING',
        'SCHEMA_MISSING',
      ]);
    });

    it('hitting statement_timeout: exit 1 with a code, nothing half-applied', async () => {
      const name = 'timedout';
      await bareTenant(name);
      const schema = `tenant_${name}`;
      const blocker = await blockRecording(schema);
      const db = plane.database.name;
      await asSuperuser(plane, `ALTER DATABASE "${db}" SET statement_timeout = '1s'`);
      let outcome: CommandOutcome;
      try {
        outcome = await cli(['tenant', name, 'up'], env);
      } finally {
        await asSuperuser(plane, `ALTER DATABASE "${db}" RESET statement_timeout`);
        await blocker.query('ROLLBACK');
        await blocker.end();
      }
      expectRefusal(outcome, 'MIGRATION_FAILED');
      expect(outcome.stderr).to.contain('statement timeout');
      expect(await tables(schema)).to.deep.equal([]);
      const again = await cli(['tenant', name, 'provision'], env);
      expect(again.code, again.stderr).to.equal(0);
      expect((await verify(plane.db, name)).clean).to.equal(true);
    });

    it('a server idle_in_transaction_session_timeout does not end the lock mid-run', async () => {
      const name = 'idlelock';
      await bareTenant(name);
      const db = plane.database.name;
      await asSuperuser(
        plane,
        `ALTER DATABASE "${db}" SET idle_in_transaction_session_timeout = '1s'`,
      );
      // New connections, which the database's setting applies to.
      const runDb = plane.open();
      const lockDb = plane.open({ lockTimeoutMs: 500 });
      let secondGotIn = false;
      try {
        const first = provision(runDb, name, {
          afterStep: async (step) => {
            if (step !== 'migrations') return;
            // A long migration: the lock session idles in its transaction meanwhile.
            await sleep(2_500);
            secondGotIn = await withAdvisoryLock(lockDb, `tenant:${name}`, () =>
              Promise.resolve(true),
            ).catch(() => false);
          },
        });
        const result = await first.then(
          () => 'ok',
          (err: Error) => err.message,
        );
        expect(secondGotIn, 'another run took the lock of a running one').to.equal(false);
        expect(result).to.equal('ok');
      } finally {
        await asSuperuser(
          plane,
          `ALTER DATABASE "${db}" RESET idle_in_transaction_session_timeout`,
        );
      }
      expect((await verify(plane.db, name)).clean).to.equal(true);
    });
  });

  describe('runs at the same time', () => {
    it('two CLIs provisioning one tenant both succeed, one after the other', async () => {
      const runs = await Promise.all([
        cli(['tenant', 'twice', 'provision'], env),
        cli(['tenant', 'twice', 'provision'], env),
        cli(['tenant', 'twice', 'up'], env),
      ]);
      const [a, b, up] = runs;
      expect(a?.code, a?.stderr).to.equal(0);
      expect(b?.code, b?.stderr).to.equal(0);
      // The up may come first and find no tenant yet, which it must say with a code.
      if (up && up.code !== 0) expectRefusal(up, 'MIGRATION_FAILED');
      const ids = [JSON.parse(a?.stdout ?? '{}'), JSON.parse(b?.stdout ?? '{}')].map(
        (r: { tenantId: string }) => r.tenantId,
      );
      expect(ids[0]).to.equal(ids[1]);
      const applied = [a, b].flatMap(
        (o) => (JSON.parse(o?.stdout ?? '{}') as { applied: string[] }).applied,
      );
      expect(applied.sort()).to.deep.equal(tenantMigrations.map((m) => m.name).sort());
      expect((await verify(plane.db, 'twice')).clean).to.equal(true);
      const { rows } = await query(
        plane.database.url,
        "SELECT count(*)::int AS n FROM platform.tenants WHERE slug = 'twice'",
      );
      expect(rows[0]).to.deep.equal({ n: 1 });
    });

    it('two platform ups at once: both exit 0, each migration applied once', async () => {
      const [a, b] = await Promise.all([
        cli(['platform', 'up'], env),
        cli(['platform', 'up'], env),
      ]);
      expect(a?.code, a?.stderr).to.equal(0);
      expect(b?.code, b?.stderr).to.equal(0);
    });

    it('provision and deprovision --delete of one tenant at once leave a consistent registry', async () => {
      await provision(plane.db, 'racer');
      const [del, prov] = await Promise.all([
        cli(['tenant', 'racer', 'deprovision', '--delete'], env),
        cli(['tenant', 'racer', 'provision'], env),
      ]);
      expect(del.code, del.stderr).to.equal(0);
      expect(prov.code, prov.stderr).to.equal(0);
      const report = await verify(plane.db, 'racer');
      const { rows } = await query(
        plane.database.url,
        "SELECT count(*)::int AS n FROM platform.tenants WHERE slug = 'racer'",
      );
      // Either order is fine; a half of each is not.
      if ((rows[0] as { n: number }).n === 1) expect(report.clean).to.equal(true);
      else
        expect(report.issues.map((i) => i.code)).to.include.members([
          'NOT_REGISTERED',
          'ROLE_MISSING',
          'SCHEMA_MISSING',
        ]);
    });

    it('a CLI waits for a lock held by another session and then runs', async () => {
      const holder = new pg.Client({ connectionString: plane.database.url });
      await holder.connect();
      await holder.query('SELECT pg_advisory_lock($1, hashtext($2))', [
        LOCK_CLASS,
        'tenant:select',
      ]);
      const run = cli(['tenant', 'select', 'up'], env);
      await sleep(1_500);
      await holder.end();
      const outcome = await run;
      expect(outcome.code, outcome.stderr).to.equal(0);
    });
  });

  describe('roles afterwards, with real logins', () => {
    let app: pg.Client;

    before(async () => {
      await provision(plane.db, 'roles-a');
      await provision(plane.db, 'roles-b');
      app = new pg.Client({ connectionString: plane.appUrl });
      await app.connect();
    });
    after(async () => app.end());

    it('the application role creates nothing, anywhere', async () => {
      for (const sql of [
        'CREATE TABLE tenant_roles_a.evil (id int)',
        'CREATE TABLE platform.evil (id int)',
        'CREATE TABLE public.evil (id int)',
        'CREATE SCHEMA evil',
        'CREATE FUNCTION tenant_roles_a.evil() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$',
        'CREATE VIEW tenant_roles_a.evil AS SELECT 1',
      ]) {
        expect(await outcomeOf(app, sql), sql).to.equal('42501');
      }
    });

    it('neither the application role nor a tenant role alters or empties the audit tables', async () => {
      const tenantRole = `${plane.db.roles.tenantPrefix}roles_a`;
      for (const role of [null, tenantRole]) {
        if (role) await app.query(`SET ROLE ${role}`);
        try {
          for (const sql of [
            'ALTER TABLE tenant_roles_a.audit_events DISABLE TRIGGER ALL',
            'ALTER TABLE tenant_roles_a.audit_events NO FORCE ROW LEVEL SECURITY',
            'TRUNCATE tenant_roles_a.audit_events',
            'DROP TABLE tenant_roles_a.audit_events',
            'DROP POLICY tenant_isolation ON tenant_roles_a.audit_events',
            'CREATE TRIGGER evil BEFORE INSERT ON tenant_roles_a.audit_events ' +
              'FOR EACH ROW EXECUTE FUNCTION tenant_roles_a.audit_events_refuse()',
          ]) {
            const result = await outcomeOf(app, sql);
            expect(result, `${role ?? 'app'}: ${sql}`).to.not.equal('ok');
          }
        } finally {
          await app.query('RESET ROLE');
        }
      }
    });

    it('a tenant role reads no rows of its own schema without the tenant context', async () => {
      const a = await provision(plane.db, 'roles-a');
      await app.query('BEGIN');
      try {
        await app.query("SELECT set_config('app.tenant_id', $1, true)", [a.tenantId]);
        await app.query(
          `INSERT INTO tenant_roles_a.organizations (code, legal_name, display_name, country,
             currency, time_zone) VALUES ('X', 'X', 'X', 'BD', 'BDT', 'Asia/Dhaka')`,
        );
        await app.query('COMMIT');
      } catch (err) {
        await app.query('ROLLBACK');
        throw err;
      }
      await app.query(`SET ROLE ${plane.db.roles.tenantPrefix}roles_a`);
      try {
        const { rows } = await app.query(
          'SELECT count(*)::int AS n FROM tenant_roles_a.organizations',
        );
        expect(rows[0]).to.deep.equal({ n: 0 });
        expect(await outcomeOf(app, `SET ROLE ${plane.db.roles.owner}`)).to.equal('42501');
      } finally {
        await app.query('RESET ROLE');
      }
    });

    it('with tenant B’s context, the application reads nothing of tenant A', async () => {
      const b = await provision(plane.db, 'roles-b');
      await app.query('BEGIN');
      try {
        await app.query("SELECT set_config('app.tenant_id', $1, true)", [b.tenantId]);
        const { rows } = await app.query(
          'SELECT count(*)::int AS n FROM tenant_roles_a.organizations',
        );
        expect(rows[0]).to.deep.equal({ n: 0 });
      } finally {
        await app.query('ROLLBACK');
      }
    });

    it('acting as tenant A’s role, tenant B’s schema and the registry’s writes are closed', async () => {
      await app.query(`SET ROLE ${plane.db.roles.tenantPrefix}roles_a`);
      try {
        for (const sql of [
          'SELECT 1 FROM tenant_roles_b.organizations',
          'SELECT 1 FROM tenant_roles_b.audit_events',
          'CREATE TABLE tenant_roles_a.evil (id int)',
          "UPDATE platform.tenants SET status = 'active'",
        ]) {
          expect(await outcomeOf(app, sql), sql).to.equal('42501');
        }
      } finally {
        await app.query('RESET ROLE');
      }
    });

    it('the application role cannot change the registry nor log in as a tenant role', async () => {
      for (const sql of [
        "UPDATE platform.tenants SET status = 'active'",
        "INSERT INTO platform.tenants (slug, display_name, schema_name, role_name) VALUES ('x','x','x','x')",
        'DELETE FROM platform.tenants',
        'DELETE FROM tenant_roles_a.schema_migrations',
        `ALTER ROLE ${plane.db.roles.tenantPrefix}roles_a LOGIN`,
        `GRANT ${plane.db.roles.tenantPrefix}roles_a TO PUBLIC`,
      ]) {
        expect(await outcomeOf(app, sql), sql).to.not.equal('ok');
      }
    });
  });
});
