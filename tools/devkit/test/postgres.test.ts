import { expect } from 'chai';
import pg from 'pg';
import { createTestDatabase } from '@vextrus/devkit';

describe('embedded PostgreSQL test cluster', () => {
  it('gives each suite a database of its own that it can drop', async () => {
    const db = await createTestDatabase('devkit');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query<{ name: string }>('SELECT current_database() AS name');
    await client.end();
    await db.drop();

    expect(rows[0]?.name).to.equal(db.name);
  });
});
