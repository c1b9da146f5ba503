import { expect } from 'chai';
import pg from 'pg';
import { provision, verify } from '../src/index.js';
import { relationStateQuery } from '../src/tenant-state.js';
import { createPlane, type TestPlane } from '@vextrus/devkit';

/**
 * The relation query as it was written before it went through pg_depend: a join on the schema
 * name, which PostgreSQL answers by reading the whole of pg_class (slow with many tenants), but
 * which plainly finds every relation of the schema. The query that verify and provisioning use
 * must return exactly its rows. When the columns of relationStateQuery change, change them here
 * in the same way, and keep this FROM and WHERE.
 */
function referenceQuery(param: string): string {
  const grantee = `CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END`;
  return `SELECT c.relname AS name, c.relkind AS kind, pg_get_userbyid(c.relowner) AS owner,
            c.relrowsecurity AS rls, c.relforcerowsecurity AS "forceRls",
            EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) o
                     WHERE o.option_name = 'security_invoker'
                       AND lower(o.option_value) IN ('true', 'on', '1', 'yes'))
              AS "securityInvoker",
            (SELECT json_build_object('notNull', t.attnotnull,
                                      'type', format_type(t.atttypid, NULL))
               FROM pg_attribute t
              WHERE t.attrelid = c.oid AND t.attname = 'tenant_id' AND NOT t.attisdropped)
              AS "tenantColumn",
            COALESCE((SELECT json_agg(json_build_object('grantee', ${grantee},
                        'privilege', a.privilege_type, 'grantable', a.is_grantable))
                        FROM aclexplode(c.relacl) a), '[]') AS acl,
            COALESCE((SELECT json_agg(json_build_object('name', p.polname,
                        'permissive', p.polpermissive, 'command', p.polcmd,
                        'roles', ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC'
                                              ELSE pg_get_userbyid(r) END
                                         FROM unnest(p.polroles) r),
                        'using', pg_get_expr(p.polqual, p.polrelid),
                        'withCheck', pg_get_expr(p.polwithcheck, p.polrelid)) ORDER BY p.polname)
                        FROM pg_policy p WHERE p.polrelid = c.oid), '[]') AS policies
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${param} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      ORDER BY c.relname`;
}

/**
 * Everything a schema can hold besides what provisioning creates, and a few ways of getting it
 * there: the verify must see each relation, whatever its kind and however it came.
 */
const UNUSUAL_CONTENT = `
  CREATE TABLE tenant_odd.notes (id int, dropped text, tenant_id uuid NOT NULL);
  ALTER TABLE tenant_odd.notes DROP COLUMN dropped;
  ALTER TABLE tenant_odd.notes ADD COLUMN added text;
  CREATE INDEX notes_id ON tenant_odd.notes (id);
  CREATE POLICY notes_open ON tenant_odd.notes USING (true);
  GRANT SELECT ON tenant_odd.notes TO PUBLIC;
  CREATE VIEW tenant_odd.note_view AS SELECT id FROM tenant_odd.notes;
  CREATE VIEW tenant_odd.invoker_view WITH (security_invoker = on) AS SELECT 1 AS one;
  CREATE MATERIALIZED VIEW tenant_odd.note_counts AS SELECT count(*) FROM tenant_odd.notes;
  CREATE SEQUENCE tenant_odd.counter;
  CREATE TABLE tenant_odd.serials (id serial, n int GENERATED ALWAYS AS IDENTITY, tenant_id text);
  CREATE TABLE tenant_odd.parts (tenant_id uuid NOT NULL, at date) PARTITION BY RANGE (at);
  CREATE TABLE tenant_odd.parts_2026 PARTITION OF tenant_odd.parts
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
  CREATE UNLOGGED TABLE tenant_odd.scratch (body text);
  CREATE TABLE tenant_odd.toasted (body text, tenant_id uuid);
  CREATE TYPE tenant_odd.pair AS (a int, b int);
  CREATE TABLE public.moved_in (id serial, tenant_id uuid);
  ALTER TABLE public.moved_in SET SCHEMA tenant_odd;
  CREATE TABLE tenant_odd.moved_out (x int);
  ALTER TABLE tenant_odd.moved_out SET SCHEMA public;
  CREATE TABLE public.organizations (x int);
  CREATE FOREIGN DATA WRAPPER odd_wrapper;
  CREATE SERVER odd_server FOREIGN DATA WRAPPER odd_wrapper;
  CREATE FOREIGN TABLE tenant_odd.remote (tenant_id uuid) SERVER odd_server;
  CREATE TABLE tenant_odd."Mixed Case" (tenant_id uuid NOT NULL);
`;

describe('tenant state queries', function () {
  this.timeout(120_000);
  let plane: TestPlane;

  before(async () => {
    plane = await createPlane('tenant_state');
    await provision(plane.db, 'odd');
    await provision(plane.db, 'even');
  });
  after(async () => plane.close());

  /** The rows of a query on one schema, read as verify reads them (only pg_catalog on path). */
  const rows = async (query: string, schema: string): Promise<Record<string, unknown>[]> => {
    const client = new pg.Client({ connectionString: plane.database.url });
    await client.connect();
    try {
      await client.query("SET search_path = 'pg_catalog'");
      return (await client.query<Record<string, unknown>>(query, [schema])).rows;
    } finally {
      await client.end();
    }
  };

  it('finds the same relations, with the same state, as the join on the schema name', async () => {
    const provisioned = await rows(referenceQuery('$1'), 'tenant_odd');
    expect(await rows(relationStateQuery('$1'), 'tenant_odd')).to.deep.equal(provisioned);

    const client = new pg.Client({ connectionString: plane.database.url });
    await client.connect();
    try {
      await client.query(UNUSUAL_CONTENT);
      await client.query(`ALTER TABLE tenant_odd.serials OWNER TO ${plane.db.roles.app}`);
    } finally {
      await client.end();
    }
    const reference = await rows(referenceQuery('$1'), 'tenant_odd');
    const names = reference.map((row) => row.name);

    expect(await rows(relationStateQuery('$1'), 'tenant_odd')).to.deep.equal(reference);
    expect(await rows(relationStateQuery('$1'), 'tenant_even')).to.deep.equal(
      await rows(referenceQuery('$1'), 'tenant_even'),
    );
    expect(await rows(relationStateQuery('$1'), 'tenant_none')).to.deep.equal([]);
    // The comparison means something only if the reference holds what was just created.
    expect(names).to.include.members([
      'Mixed Case',
      'counter',
      'invoker_view',
      'moved_in',
      'moved_in_id_seq',
      'note_counts',
      'note_view',
      'notes',
      'parts',
      'parts_2026',
      'remote',
      'scratch',
      'serials',
      'serials_id_seq',
      'serials_n_seq',
      'toasted',
    ]);
    expect(names).to.include('organizations');
    expect(names).not.to.include.oneOf(['moved_out', 'pair', 'notes_id']);
    expect(reference).to.have.length(provisioned.length + 16);
  });

  it('lets verify report every relation that provisioning did not create', async () => {
    const atOnce = await verify(plane.db, 'odd');
    const stepwise = await verify(plane.db, 'odd', 'step-by-step');
    const objects = new Set(atOnce.issues.map((i) => `${i.code} ${i.object}`));

    const { auditRetentionDays, ...report } = atOnce;
    expect(auditRetentionDays).to.equal(365);
    expect(report).to.deep.equal(stepwise);
    expect([...objects]).to.include.members([
      'UNSUPPORTED_RELATION materialized view tenant_odd.note_counts',
      'UNSUPPORTED_RELATION foreign table tenant_odd.remote',
      'VIEW_NOT_SECURITY_INVOKER view tenant_odd.note_view',
      'UNEXPECTED_POLICY table tenant_odd.notes',
      'UNEXPECTED_PRIVILEGE table tenant_odd.notes',
      'TENANT_COLUMN_INVALID table tenant_odd.serials',
      'WRONG_OWNER table tenant_odd.serials',
      'TENANT_COLUMN_MISSING table tenant_odd.scratch',
      'RLS_NOT_FORCED partitioned table tenant_odd.parts',
      'RLS_NOT_FORCED table tenant_odd.parts_2026',
      'RLS_NOT_FORCED table tenant_odd.moved_in',
      'RLS_NOT_FORCED table tenant_odd.Mixed Case',
      'MISSING_PRIVILEGE sequence tenant_odd.counter',
      'MISSING_PRIVILEGE sequence tenant_odd.moved_in_id_seq',
    ]);
    expect((await verify(plane.db, 'even')).issues).to.deep.equal([]);
  });
});
