import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import pg from 'pg';
import { pino } from 'pino';
import { QueryTypes, Sequelize } from 'sequelize';
import {
  PROVISION_STEPS,
  MigrationErrorCode,
  deprovision,
  findTenant,
  provision,
  repair,
  verify,
  type Database,
  type MigrationError,
  type ProvisionResult,
} from '../src/index.js';
import { catalogDump } from './support/catalog.js';
import { AUDIT_APPEND_SIGNATURE } from '../src/tenant/conventions.js';
import { createPlane, type TestPlane } from '@vextrus/devkit';

const CHILD = fileURLToPath(new URL('./support/provision-child.ts', import.meta.url));

async function sql(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

/** Runs provisioning in a child process that kills itself after `step`; resolves on its death. */
function provisionAndKill(plane: TestPlane, slug: string, step: string): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions', 'vextrus-source', CHILD],
      {
        env: {
          ...process.env,
          TEST_DATABASE_URL: plane.database.url,
          TEST_ROLES: JSON.stringify(plane.db.roles),
          TEST_SLUG: slug,
          KILL_AFTER: step,
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL' || step === 'none') resolve(signal);
      else reject(new Error(`child exited with ${code}: ${stderr}`));
    });
  });
}

describe('tenant provisioning', function () {
  this.timeout(120_000);
  let plane: TestPlane;
  let reference: string;
  let acme: ProvisionResult;

  /** The catalog of a tenant's schema, with its own names replaced by placeholders. */
  const dumpOf = async (slug: string): Promise<string> => {
    const role = `${plane.db.roles.tenantPrefix}${slug.replaceAll('-', '_')}`;
    const schema = `tenant_${slug.replaceAll('-', '_')}`;
    // Each table's isolation policy names the tenant's id.
    const id = (await findTenant(plane.db, slug))?.id ?? '<unregistered>';
    return catalogDump(plane.database.url, schema, { [role]: '<role>', [id]: '<tenant>' });
  };

  before(async () => {
    plane = await createPlane('provisioning');
    acme = await provision(plane.db, 'acme');
    reference = await dumpOf('acme');
  });
  after(async () => plane.close());

  it('when two tenants are provisioned, each verifies clean and has the same schema', async () => {
    const beta = await provision(plane.db, 'beta-group', { displayName: 'Beta Group' });

    expect(beta.schema).to.equal('tenant_beta_group');
    expect((await verify(plane.db, 'acme')).issues).to.deep.equal([]);
    expect((await verify(plane.db, 'beta-group')).issues).to.deep.equal([]);
    expect(await dumpOf('beta-group')).to.equal(reference);
    expect(await findTenant(plane.db, 'beta-group')).to.include({
      status: 'active',
      displayName: 'Beta Group',
    });
  });

  it('when provisioning runs again, it changes nothing and keeps the tenant id', async () => {
    const before = await findTenant(plane.db, 'acme');

    const again = await provision(plane.db, 'acme');

    expect(again.tenantId).to.equal(before?.id);
    expect(again.applied).to.deep.equal([]);
    expect(await dumpOf('acme')).to.equal(reference);
    expect((await verify(plane.db, 'acme')).clean).to.equal(true);
  });

  it('when killed after any step, running it again ends in the same verified state', async () => {
    const slugs = PROVISION_STEPS.map((step) => `killed-${step}`);

    const signals = await Promise.all(
      PROVISION_STEPS.map((step, i) => provisionAndKill(plane, slugs[i] ?? '', step)),
    );
    for (const slug of slugs) await provision(plane.db, slug);

    expect(signals.every((signal) => signal === 'SIGKILL')).to.equal(true);
    for (const slug of slugs) {
      expect((await verify(plane.db, slug)).issues, slug).to.deep.equal([]);
      expect(await dumpOf(slug), slug).to.equal(reference);
    }
  });

  it('when another session changes the same catalog row meanwhile, provisioning tries again', async () => {
    // Every tenant role is granted USAGE on the platform schema: one pg_namespace row that two
    // runs (two tenants at once, or a killed run's last statement) can change at the same time.
    const other = new pg.Client({ connectionString: plane.database.url });
    await other.connect();
    try {
      await other.query('CREATE ROLE race_probe NOLOGIN');
      await other.query('BEGIN');
      await other.query('GRANT USAGE ON SCHEMA platform TO race_probe');
      const provisioning = provision(plane.db, 'race');
      // provision's own GRANT now waits for that row; committing makes it fail once.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await other.query('COMMIT');

      await provisioning;
      expect((await verify(plane.db, 'race')).issues).to.deep.equal([]);
      expect(await dumpOf('race')).to.equal(reference);
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.query('REVOKE USAGE ON SCHEMA platform FROM race_probe; DROP ROLE race_probe');
      await other.end();
    }
  });

  it('when repair meets another change of the same catalog row, it tries again', async () => {
    const role = `${plane.db.roles.tenantPrefix}race`;
    await sql(
      plane.database.url,
      `REVOKE USAGE ON SCHEMA platform FROM ${role}; CREATE ROLE race_probe NOLOGIN`,
    );
    const other = new pg.Client({ connectionString: plane.database.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query('GRANT USAGE ON SCHEMA platform TO race_probe');
      const repairing = repair(plane.db, 'race');
      await new Promise((resolve) => setTimeout(resolve, 500));
      await other.query('COMMIT');

      expect((await repairing).issues).to.deep.equal([]);
    } finally {
      await other.query('ROLLBACK').catch(() => undefined);
      await other.query('REVOKE USAGE ON SCHEMA platform FROM race_probe; DROP ROLE race_probe');
      await other.end();
    }
  });

  it('when RLS is no longer forced, verify reports it and repair restores it', async () => {
    await sql(
      plane.database.url,
      'ALTER TABLE tenant_acme.organizations NO FORCE ROW LEVEL SECURITY',
    );

    const drift = await verify(plane.db, 'acme');
    const repaired = await repair(plane.db, 'acme');

    expect(drift.issues.map((i) => [i.code, i.object])).to.deep.equal([
      ['RLS_NOT_FORCED', 'table tenant_acme.organizations'],
    ]);
    expect(repaired.clean).to.equal(true);
    expect(await dumpOf('acme')).to.equal(reference);
  });

  it('when anyone but the tenant role may store audit records, verify reports it and repair undoes it', async () => {
    const append = `tenant_acme.${AUDIT_APPEND_SIGNATURE}`;
    const { role } = await provision(plane.db, 'acme');
    await sql(
      plane.database.url,
      `GRANT EXECUTE ON FUNCTION ${append} TO PUBLIC;
       REVOKE EXECUTE ON FUNCTION ${append} FROM ${role}`,
    );

    const drift = await verify(plane.db, 'acme');
    const repaired = await repair(plane.db, 'acme');

    expect(drift.issues.map((i) => [i.code, i.object, i.detail])).to.deep.equal([
      [
        'UNEXPECTED_PRIVILEGE',
        'function tenant_acme.audit_append',
        'PUBLIC has EXECUTE, which provisioning does not grant',
      ],
      ['MISSING_PRIVILEGE', 'function tenant_acme.audit_append', `${role} lacks EXECUTE`],
    ]);
    expect(repaired.clean).to.equal(true);
    expect(await dumpOf('acme')).to.equal(reference);
  });

  it('when the isolation policy is dropped, verify reports it and repair restores it', async () => {
    await sql(plane.database.url, 'DROP POLICY tenant_isolation ON tenant_acme.organizations');

    const drift = await verify(plane.db, 'acme');
    const repaired = await repair(plane.db, 'acme');

    expect(drift.issues.map((i) => i.code)).to.deep.equal(['POLICY_MISSING']);
    expect(repaired.clean).to.equal(true);
    expect(await dumpOf('acme')).to.equal(reference);
  });

  it('a policy without the schema’s tenant (as releases before 2026-12 made it) is repaired', async () => {
    await sql(
      plane.database.url,
      `DROP POLICY tenant_isolation ON tenant_acme.audit_events;
       CREATE POLICY tenant_isolation ON tenant_acme.audit_events
         USING (tenant_id = platform.current_tenant_id())
         WITH CHECK (tenant_id = platform.current_tenant_id());`,
    );

    const drift = await verify(plane.db, 'acme');
    const repaired = await repair(plane.db, 'acme');

    expect(drift.issues.map((i) => [i.code, i.object])).to.deep.equal([
      ['POLICY_CHANGED', 'table tenant_acme.audit_events'],
    ]);
    expect(drift.issues[0]?.detail).to.include(`tenant_id = '${acme.tenantId}'::uuid`);
    expect(repaired.clean).to.equal(true);
    expect(await dumpOf('acme')).to.equal(reference);
  });

  it('when RLS is off, a policy opens access and rights are added, repair undoes all', async () => {
    const { app } = plane.db.roles;
    await sql(
      plane.database.url,
      `ALTER TABLE tenant_acme.organizations DISABLE ROW LEVEL SECURITY;
       CREATE POLICY open_door ON tenant_acme.organizations USING (true);
       GRANT TRUNCATE ON tenant_acme.organizations TO ${app};
       GRANT SELECT ON tenant_acme.schema_migrations TO PUBLIC;
       GRANT CREATE ON SCHEMA tenant_acme TO ${app};`,
    );

    const drift = await verify(plane.db, 'acme');
    const repaired = await repair(plane.db, 'acme');

    expect(drift.issues.map((i) => i.code).sort()).to.deep.equal([
      'RLS_NOT_ENABLED',
      'UNEXPECTED_POLICY',
      'UNEXPECTED_PRIVILEGE',
      'UNEXPECTED_PRIVILEGE',
      'UNEXPECTED_PRIVILEGE',
    ]);
    expect(repaired.issues).to.deep.equal([]);
    expect(await dumpOf('acme')).to.equal(reference);
  });

  it('reads a tenant in one statement, as query by query would, whatever the search path', async () => {
    const { app } = plane.db.roles;
    await sql(
      plane.database.url,
      `ALTER TABLE tenant_acme.organizations NO FORCE ROW LEVEL SECURITY;
       CREATE POLICY open_door ON tenant_acme.organizations USING (true);
       GRANT TRUNCATE ON tenant_acme.organizations TO ${app};`,
    );
    // A session whose search path shows the platform schema would print the isolation policy
    // as current_tenant_id(), unqualified: the one statement must set its own path.
    const logged: string[] = [];
    const shifted: Database = {
      sequelize: new Sequelize(plane.database.url, {
        dialect: 'postgres',
        logging: false,
        dialectOptions: { options: '-c search_path=platform,public' },
      }),
      roles: plane.db.roles,
      logger: pino({ level: 'debug' }, { write: (line: string) => logged.push(line) }),
      lockTimeoutMs: 1_000,
      close: () => shifted.sequelize.close(),
    };
    try {
      const [path] = await shifted.sequelize.query<{ search_path: string }>(
        "SELECT current_setting('search_path') AS search_path",
        { type: QueryTypes.SELECT },
      );
      const atOnce = await verify(shifted, 'acme');
      const stepwise = await verify(plane.db, 'acme', 'step-by-step');
      const missing = await verify(shifted, 'nobody');

      expect(path?.search_path).to.equal('platform,public');
      const { auditRetentionDays, ...report } = atOnce;
      expect(auditRetentionDays).to.equal(365);
      expect(report).to.deep.equal(stepwise);
      expect(atOnce.issues.map((i) => i.code).sort()).to.deep.equal([
        'RLS_NOT_FORCED',
        'UNEXPECTED_POLICY',
        'UNEXPECTED_PRIVILEGE',
      ]);
      // Only the tenant without a schema was read step by step.
      expect(logged.filter((line) => line.includes('step by step'))).to.have.length(1);
      expect(missing).to.deep.equal(await verify(plane.db, 'nobody', 'step-by-step'));
      expect(missing.issues.map((i) => i.code)).to.deep.equal([
        'NOT_REGISTERED',
        'ROLE_MISSING',
        'SCHEMA_MISSING',
      ]);
    } finally {
      await shifted.close();
      await repair(plane.db, 'acme');
    }
    expect(await dumpOf('acme')).to.equal(reference);
  });

  it('when the tenant role is dropped, verify reports it missing', async () => {
    await provision(plane.db, 'gamma');
    const role = `${plane.db.roles.tenantPrefix}gamma`;
    await sql(plane.database.url, `DROP OWNED BY ${role}; DROP ROLE ${role}`);

    const drift = await verify(plane.db, 'gamma');
    const repaired = await repair(plane.db, 'gamma');

    expect(drift.issues.map((i) => i.code)).to.include('ROLE_MISSING');
    expect(repaired.issues).to.deep.equal([]);
  });

  it('when a slug is not a DNS label, provisioning refuses it and says why', async () => {
    for (const slug of ['Acme', '-acme', 'acme-', 'a_b', 'x'.repeat(41), '', 'a;drop']) {
      const error = await provision(plane.db, slug).then(
        () => undefined,
        (err: MigrationError) => err,
      );
      expect(error?.code, slug).to.equal(MigrationErrorCode.InvalidSlug);
      expect(error?.message).to.match(/^invalid tenant slug/);
    }
  });

  it('when deprovisioned with retain, access is revoked and provision restores it', async () => {
    await provision(plane.db, 'delta');

    await deprovision(plane.db, 'delta', 'retain');
    const retained = await verify(plane.db, 'delta');
    const members = await sql(
      plane.database.url,
      `SELECT 1 FROM pg_auth_members WHERE roleid = '${plane.db.roles.tenantPrefix}delta'::regrole
         AND member = '${plane.db.roles.app}'::regrole`,
    );
    await provision(plane.db, 'delta');

    expect(retained).to.include({ status: 'retained', clean: true });
    expect(members.rowCount).to.equal(0);
    expect(await dumpOf('delta')).to.equal(reference);
  });

  it('when deprovisioned with delete, schema, role and registry entry are gone', async () => {
    await provision(plane.db, 'epsilon');

    await deprovision(plane.db, 'epsilon', 'delete');
    await deprovision(plane.db, 'epsilon', 'delete');
    const left = await sql(
      plane.database.url,
      `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_epsilon')::int AS schemas,
              (SELECT count(*) FROM pg_roles
                WHERE rolname = '${plane.db.roles.tenantPrefix}epsilon')::int AS roles,
              (SELECT count(*) FROM platform.tenants WHERE slug = 'epsilon')::int AS tenants`,
    );

    expect(left.rows[0]).to.deep.equal({ schemas: 0, roles: 0, tenants: 0 });
  });

  it('when the schema holds a foreign object, delete stops and names it', async () => {
    await provision(plane.db, 'zeta');
    await sql(plane.database.url, 'CREATE TABLE tenant_zeta.notes (body text)');

    const error = await deprovision(plane.db, 'zeta', 'delete').then(
      () => undefined,
      (err: MigrationError) => err,
    );
    await sql(plane.database.url, 'DROP TABLE tenant_zeta.notes');
    await deprovision(plane.db, 'zeta', 'delete');

    expect(error?.code).to.equal(MigrationErrorCode.DeprovisioningFailed);
    expect(error?.message).to.contain('table tenant_zeta.notes', error?.message);
    expect(await findTenant(plane.db, 'zeta')).to.equal(undefined);
  });

  it('a tenant whose deletion stopped halfway is not provisioned again until it is finished', async () => {
    await provision(plane.db, 'eta');
    await sql(plane.database.url, 'CREATE TABLE tenant_eta.notes (body text)');
    await deprovision(plane.db, 'eta', 'delete').catch(() => undefined);
    const halfDeleted = await findTenant(plane.db, 'eta');

    const error = await provision(plane.db, 'eta').then(
      () => undefined,
      (err: MigrationError) => err,
    );
    const after = await findTenant(plane.db, 'eta');
    await sql(plane.database.url, 'DROP TABLE tenant_eta.notes');
    await deprovision(plane.db, 'eta', 'delete');
    const again = await provision(plane.db, 'eta');

    expect(halfDeleted?.status).to.equal('deleting');
    expect(error?.code).to.equal(MigrationErrorCode.ProvisioningFailed);
    expect(error?.message).to.contain('being deleted').and.contain('deprovision --delete');
    expect(after?.status).to.equal('deleting');
    expect((await verify(plane.db, 'eta')).clean).to.equal(true);
    expect(again.tenantId).to.not.equal(halfDeleted?.id);
  });
});
