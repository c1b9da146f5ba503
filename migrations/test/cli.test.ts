import { expect } from 'chai';
import {
  createPlane,
  runMigrationsCli,
  type CommandOutcome,
  type TestPlane,
} from '@vextrus/devkit';

const cli = runMigrationsCli;

describe('migrations CLI', function () {
  this.timeout(120_000);
  let plane: TestPlane;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    plane = await createPlane('cli', { platform: false });
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

  it('without a database configured, it exits non-zero with one line saying what to set', async () => {
    const outcome = await cli(['platform', 'status'], {});

    expect(outcome.code).to.equal(1);
    expect(outcome.stderr.trim().split('\n')).to.have.length(1);
    expect(outcome.stderr).to.contain('set DATABASE_URL, or DATABASE_HOST');
  });

  it('with DATABASE_HOST but no password, it names DATABASE_PASSWORD', async () => {
    const outcome = await cli(['platform', 'status'], {
      DATABASE_HOST: '127.0.0.1',
      DATABASE_USERNAME: 'x',
      DATABASE_NAME: 'y',
    });

    expect(outcome.code).to.equal(1);
    expect(outcome.stderr).to.contain('DATABASE_PASSWORD is missing');
  });

  it('with an invalid slug, it exits non-zero saying why, without a stack trace', async () => {
    const outcome = await cli(['tenant', 'Not_A_Label', 'provision'], env);

    expect(outcome.code).to.equal(1);
    expect(outcome.stderr).to.match(/^error \[INVALID_TENANT_SLUG\]: invalid tenant slug/);
    expect(outcome.stderr).to.not.match(/\n\s+at /);
  });

  it('runs roles, platform, provision, verify and tenants up, each exiting 0', async () => {
    const steps = [
      ['roles', 'ensure'],
      ['platform', 'up'],
      ['tenant', 'acme', 'provision'],
      ['tenant', 'acme', 'verify'],
      ['tenants', 'up', '--all', '--concurrency', '2'],
    ];
    const outcomes: CommandOutcome[] = [];
    for (const args of steps) outcomes.push(await cli(args, env));
    const status = await cli(['tenant', 'acme', 'status'], env);

    outcomes.forEach((o, i) => expect(o.code, `${steps[i]?.join(' ')}: ${o.stderr}`).to.equal(0));
    expect(JSON.parse(outcomes[3]?.stdout ?? '')).to.include({ clean: true, status: 'active' });
    expect(JSON.parse(status.stdout)).to.deep.include({ pending: [] });
  });

  it('when verify finds drift, it prints the report and exits non-zero', async () => {
    const { sequelize } = plane.db;
    await sequelize.query('ALTER TABLE tenant_acme.organizations NO FORCE ROW LEVEL SECURITY');

    const outcome = await cli(['tenant', 'acme', 'verify'], env);

    expect(outcome.code).to.equal(1);
    expect(JSON.parse(outcome.stdout)).to.include({ clean: false });
    expect(outcome.stderr).to.contain('RLS_NOT_FORCED');
  });
});
