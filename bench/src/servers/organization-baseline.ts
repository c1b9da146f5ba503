/**
 * The benchmark's yardstick: a bare node:http server with a pg pool that answers a page of 50
 * organizations with the same SQL in the same transaction shape as the service (tenant settings
 * and role, the keyset query, commit), without token checks, validation or Express.
 */
import { createServer } from 'node:http';
import pg from 'pg';
import { ENTITIES } from '@vextrus/organization';

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: Number(env.POOL_MAX ?? 10) });
const columns = ENTITIES.organization.fields
  .map((field) => `${field.read ?? field.column} AS "${field.api}"`)
  .join(', ');
const LIST = `SELECT ${columns}, code AS "_cursor" FROM organizations ORDER BY code ASC, id ASC LIMIT $1`;

const server = createServer((_req, res) => {
  void (async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true),
                set_config('role', $3, true)`,
        [env.TENANT_ID, `"${env.SCHEMA}"`, env.ROLE],
      );
      const { rows } = await client.query(LIST, [51]);
      await client.query('COMMIT');
      const items = rows.slice(0, 50).map(({ _cursor: _, ...row }: Record<string, unknown>) => row);
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ items, nextCursor: rows.length > 50 ? 'next' : null }));
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      res.statusCode = 500;
      res.end(String(err));
    } finally {
      client.release();
    }
  })();
});
server.listen(Number(env.PORT), '127.0.0.1', () => {
  process.stdout.write(`listening on ${Number(env.PORT)}\n`);
});
