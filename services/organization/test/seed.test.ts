/* eslint-disable @typescript-eslint/no-unsafe-member-access --
   response bodies are untyped JSON, and the assertions are what check their shape. */
import { expect } from 'chai';
import { provision, seedOrganization } from '@vextrus/migrations';
import { runMigrationsCli } from '@vextrus/devkit';
import { startHarness, type Harness } from './support.js';

const cli = runMigrationsCli;

describe('organization service: the first organization of a tenant', function () {
  this.timeout(60_000);
  let h: Harness;

  before(async () => {
    h = await startHarness('org_seed');
  });
  after(async () => {
    await h?.close();
  });

  it('when seeded twice, the tenant has one organization with the documented defaults, listed by the service', async () => {
    const first = await seedOrganization(h.plane.db, 'alpha', {
      name: 'Alpha Group',
      code: 'ALPHA',
    });
    const second = await seedOrganization(h.plane.db, 'alpha', {
      name: 'Alpha Group',
      code: 'ALPHA',
    });

    // Once there is an organization the definition has no effect, even one refused before.
    const edited = await seedOrganization(h.plane.db, 'alpha', { name: ' ', code: 'ALPHA' });

    expect(first.outcome).to.equal('created');
    expect(second).to.deep.equal({ ...first, outcome: 'present' });
    expect(edited).to.deep.equal({ ...first, outcome: 'present' });
    const list = await h.call('GET', '/org/organizations');
    expect(list.body.items).to.have.length(1);
    expect(list.body.items[0]).to.include({
      id: first.organizationId,
      code: 'ALPHA',
      legalName: 'Alpha Group',
      displayName: 'Alpha Group',
      country: 'BD',
      currency: 'BDT',
      timeZone: 'Asia/Dhaka',
    });
    expect(
      (await h.call('GET', '/org/organizations', { tenant: h.bravo })).body.items,
    ).to.deep.equal([]);
  });

  it('when two seeds of one tenant run at once, exactly one organization is created', async () => {
    await provision(h.plane.db, 'charlie');

    const outcomes = await Promise.all([
      seedOrganization(h.plane.db, 'charlie', { name: 'Charlie', code: 'C1' }),
      seedOrganization(h.plane.db, 'charlie', { name: 'Charlie', code: 'C1' }),
    ]);

    expect(outcomes.map((o) => o.outcome).sort()).to.deep.equal(['created', 'present']);
  });

  it('when the definition is invalid, it names every problem and writes nothing', async () => {
    const failure = await seedOrganization(h.plane.db, 'bravo', {
      name: ' ',
      code: 'no spaces',
      currency: 'EURO',
      timeZone: 'Nowhere/City',
    }).catch((err: Error & { code?: string }) => err);

    expect((failure as { code?: string }).code).to.equal('INVALID_ARGUMENTS');
    expect((failure as Error).message).to.match(/name.*code.*currency.*time zone/);
    expect(
      (await h.call('GET', '/org/organizations', { tenant: h.bravo })).body.items,
    ).to.have.length(0);
  });

  it('when run through the CLI, seed-organization prints the outcome as JSON', async () => {
    const { owner, app, retention, tenantPrefix } = h.plane.db.roles;
    const env = {
      DATABASE_URL: h.plane.database.url,
      VEXTRUS_OWNER_ROLE: owner,
      VEXTRUS_APP_ROLE: app,
      VEXTRUS_RETENTION_ROLE: retention,
      VEXTRUS_TENANT_ROLE_PREFIX: tenantPrefix,
    };

    const outcome = await cli(
      [
        'tenant',
        'bravo',
        'seed-organization',
        '--name',
        'Bravo Holdings',
        '--code',
        'BRAVO',
        '--currency',
        'USD',
        '--time-zone',
        'UTC',
      ],
      env,
    );
    const missing = await cli(['tenant', 'bravo', 'seed-organization', '--name', 'X'], env);

    expect(outcome.code, outcome.stderr).to.equal(0);
    expect(JSON.parse(outcome.stdout)).to.include({ tenant: 'bravo', outcome: 'created' });
    const list = await h.call('GET', '/org/organizations', { tenant: h.bravo });
    expect(list.body.items[0]).to.include({ code: 'BRAVO', currency: 'USD', timeZone: 'UTC' });
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.contain('seed-organization needs --name N and --code C');
  });
});
