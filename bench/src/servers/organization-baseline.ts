/**
 * The benchmark's yardstick: a bare node:http server with a pg pool that answers a page of 50
 * organizations with the same SQL in the same transaction shape as the service (one round trip
 * that begins the transaction and sets the tenant, search path and role, the keyset query queued
 * right behind it, commit), without token checks, validation or Express.
 */
import { createServer } from 'node:http';
import pg from 'pg';
import { ENTITIES } from '@vextrus/organization';

const env = process.env;
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: Number(env.POOL_MAX ?? 10) });
const columns = ENTITIES.organization.fields
  .map((field) => `${field.read ?? field.column} AS "${field.api}"`)
  .join(', ');
// The statement the service's withTenantTransaction opens its transaction with (the values are a
// uuid, a schema and a role name, checked there and written as literals).
const OPENING =
  `START TRANSACTION; SELECT set_config('app.tenant_id', '${env.TENANT_ID}', true), ` +
  `set_config('search_path', '"${env.SCHEMA}"', true), set_config('role', '${env.ROLE}', true)`;
const LIST = `SELECT ${columns}, code AS "_cursor" FROM organizations ORDER BY code ASC, id ASC LIMIT $1`;

const server = createServer((_req, res) => {
  void (async () => {
    const client = await pool.connect();
    try {
      // Issued back to back, as the service does: pg sends the keyset query the moment the
      // opening statement is answered.
      const opened = client.query(OPENING);
      const listed = client.query(LIST, [51]);
      await opened;
      const { rows } = await listed;
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
