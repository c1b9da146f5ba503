import { expect } from 'chai';
import type { Sequelize } from 'sequelize';
import { createTenantDirectory } from '@vextrus/shared';

/** A stand-in for Sequelize that answers the directory's query and counts the slugs asked. */
function fakeDatabase(): { sequelize: Sequelize; asked: string[] } {
  const asked: string[] = [];
  const sequelize = {
    query(_sql: string, options: { bind: string[] }) {
      const [slug = ''] = options.bind;
      asked.push(slug);
      const known = slug.startsWith('known');
      return Promise.resolve(
        known
          ? [
              {
                id: crypto.randomUUID(),
                schema_name: 'tenant_known',
                role_name: 'r',
                status: 'active',
              },
            ]
          : [],
      );
    },
  } as unknown as Sequelize;
  return { sequelize, asked };
}

describe('tenant directory', () => {
  it('a name that cannot be a tenant slug is unknown without asking the database', async () => {
    const { sequelize, asked } = fakeDatabase();
    const directory = createTenantDirectory(sequelize);

    const answers = await Promise.all(
      ['ALPHA', 'a b', 'alpha, bravo', '-alpha', 'x'.repeat(8000), '', 'ünï'].map((slug) =>
        directory.lookup(slug),
      ),
    );

    expect(answers.every((answer) => answer === undefined)).to.equal(true);
    expect(asked).to.deep.equal([]);
  });

  it('caches a bounded number of slugs, so that a flood of invented names cannot fill memory', async () => {
    const { sequelize, asked } = fakeDatabase();
    const directory = createTenantDirectory(sequelize, 60_000, 100);

    await directory.lookup('known-first');
    for (let i = 0; i < 500; i++) await directory.lookup(`invented-${i}`);
    await directory.lookup('invented-499');
    await directory.lookup('known-first');

    // The most recent name is still cached; the first was evicted and is asked again.
    expect(asked.filter((slug) => slug === 'invented-499')).to.have.length(1);
    expect(asked.filter((slug) => slug === 'known-first')).to.have.length(2);
  });

  it('a known tenant is cached within its time to live', async () => {
    const { sequelize, asked } = fakeDatabase();
    const directory = createTenantDirectory(sequelize);

    const first = await directory.lookup('known-one');
    const second = await directory.lookup('known-one');

    expect(second).to.deep.equal(first);
    expect(asked).to.deep.equal(['known-one']);
  });

  it('a fresh lookup asks the database past the cache and caches what it finds', async () => {
    const { sequelize, asked } = fakeDatabase();
    const directory = createTenantDirectory(sequelize);

    const cached = await directory.lookup('known-again');
    const fresh = await directory.lookup('known-again', { fresh: true });
    const after = await directory.lookup('known-again');

    expect(fresh?.tenantId).to.not.equal(cached?.tenantId);
    expect(after).to.deep.equal(fresh);
    expect(asked).to.deep.equal(['known-again', 'known-again']);
  });
});
