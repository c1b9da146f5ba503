import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import pg from 'pg';
import {
  LOCK_CLASS,
  MigrationErrorCode,
  migratePlatform,
  migrateTenant,
  platformStatus,
  provision,
  tenantStatus,
  type MigrationError,
} from '../src/index.js';
import { platformMigrations } from '../src/platform/index.js';
import { tenantMigrations } from '../src/tenant/index.js';
import { catalogDump } from './support/catalog.js';
import { createPlane, type TestPlane } from '@vextrus/devkit';

async function relationsOf(url: string, schema: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'S', 'f') ORDER BY 1`,
      [schema],
    );
    const fns = await client.query<{ name: string }>(
      `SELECT p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = $1`,
      [schema],
    );
    return [...rows.map((r) => r.name), ...fns.rows.map((r) => `${r.name}()`)];
  } finally {
    await client.end();
  }
}

describe('migrations', function () {
  this.timeout(120_000);
  let plane: TestPlane;

  before(async () => {
    plane = await createPlane('migrations', { platform: false });
  });
  after(async () => plane.close());

  it('platform up, down and up again leaves an identical catalog', async () => {
    const applied = await migratePlatform(plane.db);
    const first = await catalogDump(plane.database.url, 'platform');

    const reverted = await migratePlatform(plane.db, { direction: 'down', to: 0 });
    const between = await relationsOf(plane.database.url, 'platform');
    await migratePlatform(plane.db);
    const second = await catalogDump(plane.database.url, 'platform');

    expect(applied).to.deep.equal(platformMigrations.map((m) => m.name));
    expect(reverted).to.deep.equal([...applied].reverse());
    expect(between).to.deep.equal(['schema_migrations']);
    expect(second).to.equal(first);
    expect((await platformStatus(plane.db)).pending).to.deep.equal([]);
  });

  it('tenant up, down and up again leaves an identical catalog, grants included', async () => {
    await provision(plane.db, 'acme');
    const first = await catalogDump(plane.database.url, 'tenant_acme');

    await migrateTenant(plane.db, 'acme', { direction: 'down', to: 0 });
    const between = await relationsOf(plane.database.url, 'tenant_acme');
    const status = await tenantStatus(plane.db, 'acme');
    await migrateTenant(plane.db, 'acme');
    const second = await catalogDump(plane.database.url, 'tenant_acme');

    expect(between).to.deep.equal(['schema_migrations']);
    expect(status.pending).to.deep.equal(tenantMigrations.map((m) => m.name));
    expect(second).to.equal(first);
  });

  it('the last tenant migration, undone, leaves the catalog that the ones before it build', async () => {
    const before = tenantMigrations.at(-2)!.name;
    await provision(plane.db, 'undo');

    await migrateTenant(plane.db, 'undo', { direction: 'down' });
    const undone = await catalogDump(plane.database.url, 'tenant_undo');
    await migrateTenant(plane.db, 'undo', { direction: 'down', to: 0 });
    await migrateTenant(plane.db, 'undo', { direction: 'up', to: before });
    const built = await catalogDump(plane.database.url, 'tenant_undo');

    expect((await tenantStatus(plane.db, 'undo')).pending).to.deep.equal([
      tenantMigrations.at(-1)!.name,
    ]);
    expect(undone).to.equal(built);
  });

  it('every unique constraint and index of a tenant table leads with tenant_id', async () => {
    const client = new pg.Client({ connectionString: plane.database.url });
    await client.connect();
    const { rows } = await client.query<{ index: string; first: string }>(
      `SELECT i.indexrelid::regclass::text AS index, a.attname AS first
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
        WHERE n.nspname = 'tenant_acme' AND c.relname <> 'schema_migrations'`,
    );
    await client.end();

    expect(rows.length).to.be.greaterThan(0);
    for (const row of rows) expect(row.first, row.index).to.equal('tenant_id');
  });

  it('every migration file is listed in its track, in timestamp order', async () => {
    for (const [folder, list] of [
      ['platform', platformMigrations],
      ['tenant', tenantMigrations],
    ] as const) {
      const files = (await readdir(new URL(`../src/${folder}/`, import.meta.url)))
        .filter((file) => /^\d{10}-.+\.ts$/.test(file))
        .map((file) => file.replace(/\.ts$/, ''))
        .sort();
      expect(list.map((m) => m.name)).to.deep.equal(files);
    }
  });

  it('two concurrent runs for one tenant never interleave', async () => {
    const events: string[] = [];
    const run = (id: string): Promise<unknown> => {
      const db = plane.open();
      return provision(db, 'concurrent', {
        afterStep: async (step) => {
          events.push(`${id}:${step}`);
          await sleep(5);
        },
      });
    };

    await Promise.all([run('first'), run('second')]);

    const owners = events.map((event) => event.split(':')[0]);
    const switches = owners.filter((owner, i) => i > 0 && owner !== owners[i - 1]).length;
    expect(events).to.have.length(14);
    expect(switches).to.equal(1);
  });

  it('when another run holds the tenant lock, it waits, then fails naming the holder', async () => {
    const holder = new pg.Client({
      connectionString: plane.database.url,
      application_name: 'lock-holder-under-test',
    });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
      LOCK_CLASS,
      'tenant:acme',
    ]);
    const { rows } = await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const started = Date.now();
    try {
      const error = await migrateTenant(plane.open({ lockTimeoutMs: 300 }), 'acme').then(
        () => undefined,
        (err: MigrationError) => err,
      );

      expect(Date.now() - started).to.be.within(300, 3000);
      expect(error?.code).to.equal(MigrationErrorCode.LockBusy);
      expect(error?.message).to.contain(`pid ${rows[0]?.pid}`);
      expect(error?.message).to.contain('lock-holder-under-test');
    } finally {
      await holder.end();
    }
  });
});
