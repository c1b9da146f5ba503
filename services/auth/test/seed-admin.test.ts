import { expect } from 'chai';
import { hashOpaqueToken } from '@vextrus/shared';
import { provision, seedAdmin, type Database } from '@vextrus/migrations';
import { createPlane, type TestPlane } from '@vextrus/devkit';

/** Reads a tenant's table as its own role (row-level security applies). */
async function rows<T>(db: Database, schema: string, sql: string): Promise<T[]> {
  const [result] = await db.sequelize.query(
    `SET search_path = "${schema}"; ${sql}; RESET search_path`,
    { raw: true, transaction: null },
  );
  return result as T[];
}

describe('seed-admin: the first administrator of a tenant', function () {
  this.timeout(60_000);
  let plane: TestPlane;

  before(async () => {
    plane = await createPlane('seed_admin');
  });
  after(async () => plane.close());

  it('creates a pending administrator and a setup token that is stored only as a hash', async () => {
    const tenant = await provision(plane.db, 'seed-one');

    const result = await seedAdmin(plane.db, 'seed-one', {
      email: ' Admin@Example.COM ',
      name: 'Ada Admin',
    });

    expect(result.outcome).to.equal('issued');
    expect(result.email).to.equal('admin@example.com');
    expect(result.setupToken).to.match(/^[A-Za-z0-9_-]{43}$/);
    const users = await rows<{ role: string; status: string }>(
      plane.db,
      tenant.schema,
      'SELECT role, status FROM users',
    );
    expect(users).to.deep.equal([{ role: 'tenant_admin', status: 'pending' }]);
    const tokens = await rows<{ token_hash: Buffer; purpose: string }>(
      plane.db,
      tenant.schema,
      'SELECT token_hash, purpose FROM one_time_tokens',
    );
    expect(tokens).to.have.length(1);
    expect(tokens[0]?.purpose).to.equal('setup');
    expect(tokens[0]?.token_hash.equals(hashOpaqueToken(result.setupToken) as Buffer)).to.equal(
      true,
    );
  });

  it('run again before setup is complete, it revokes the old token and issues a new one', async () => {
    const tenant = await provision(plane.db, 'seed-two');
    const first = await seedAdmin(plane.db, 'seed-two', { email: 'a@example.com', name: 'A' });

    const second = await seedAdmin(plane.db, 'seed-two', { email: 'a@example.com', name: 'A' });

    expect(second.outcome).to.equal('reissued');
    expect(second.userId).to.equal(first.userId);
    expect(second.setupToken).to.not.equal(first.setupToken);
    const tokens = await rows<{ revoked: boolean }>(
      plane.db,
      tenant.schema,
      'SELECT revoked_at IS NOT NULL AS revoked FROM one_time_tokens ORDER BY created_at',
    );
    expect(tokens.map((t) => t.revoked).sort()).to.deep.equal([false, true]);
  });

  it('once the tenant has an active administrator, it issues nothing', async () => {
    const tenant = await provision(plane.db, 'seed-three');
    await seedAdmin(plane.db, 'seed-three', { email: 'a@example.com', name: 'A' });
    await rows(plane.db, tenant.schema, "UPDATE users SET status = 'active'");

    const again = await seedAdmin(plane.db, 'seed-three', { email: 'a@example.com', name: 'A' });
    // The definition no longer matters, even one that would be refused before (a Tenant edited).
    const edited = await seedAdmin(plane.db, 'seed-three', { email: 'not an email', name: ' ' });

    expect(again).to.deep.equal({ tenant: 'seed-three', outcome: 'complete' });
    expect(edited).to.deep.equal({ tenant: 'seed-three', outcome: 'complete' });
  });

  it('for a tenant that is not registered, it fails with TENANT_NOT_PROVISIONED', async () => {
    const error = await seedAdmin(plane.db, 'nowhere', { email: 'a@example.com', name: 'A' }).then(
      () => undefined,
      (err: Error & { code?: string }) => err,
    );

    expect(error?.code).to.equal('TENANT_NOT_PROVISIONED');
  });
});
