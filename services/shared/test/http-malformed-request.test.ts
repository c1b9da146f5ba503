import { brotliCompressSync, gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { DatabaseError } from 'sequelize';
import type { ServiceDefinition } from '@vextrus/shared';
import { startTestService, type TestService } from './support.js';

/** A service with a JSON route and a route with a path parameter. */
const probe: ServiceDefinition = {
  name: 'malformed',
  defaultPort: 0,
  routes(app) {
    app.post('/echo', (req, res) => {
      res.json({ received: req.body as unknown });
    });
    app.patch('/users/:id', (req, res) => {
      res.json({ id: req.params.id });
    });
    app.get('/session-ended/:code', (req) => {
      // What a query on a pooled connection whose server session was ended fails with
      // (pg_terminate_backend: 57P01, a shutdown, …) when the statement is the first on it.
      throw new DatabaseError(
        Object.assign(new Error('terminating connection due to administrator command'), {
          code: req.params.code,
          sql: 'START TRANSACTION; SELECT set_config(…)',
        }),
      );
    });
  },
};

describe('HTTP bootstrap with malformed requests and lost sessions', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService(probe, { HTTP_BODY_LIMIT_BYTES: '2048' });
  });
  after(() => t.close());

  async function send(
    path: string,
    body: Buffer | string,
    headers: Record<string, string> = {},
    method = 'POST',
  ): Promise<{ status: number; type: string; body: Record<string, unknown> }> {
    const response = await fetch(`${t.service.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    const type = response.headers.get('content-type') ?? '';
    return { status: response.status, type, body: (await response.json()) as never };
  }

  it('a body that does not decompress answers 400 MALFORMED_JSON, never 500', async () => {
    const whole = gzipSync('{"name": "x"}');
    const answers = [
      await send('/echo', 'not gzip at all', { 'content-encoding': 'gzip' }),
      await send('/echo', 'not deflate', { 'content-encoding': 'deflate' }),
      await send('/echo', 'not brotli', { 'content-encoding': 'br' }),
      await send('/echo', whole.subarray(0, whole.length - 6), { 'content-encoding': 'gzip' }),
    ];

    for (const answer of answers) {
      expect([answer.status, answer.body.code]).to.deep.equal([400, 'MALFORMED_JSON']);
      expect(answer.type).to.match(/^application\/problem\+json/);
    }
  });

  it('a compressed body still decompresses, within the limit', async () => {
    const fine = await send('/echo', brotliCompressSync('{"name": "x"}'), {
      'content-encoding': 'br',
    });
    const bomb = await send('/echo', gzipSync(Buffer.alloc(1_000_000, 32)), {
      'content-encoding': 'gzip',
    });

    expect(fine.body).to.deep.equal({ received: { name: 'x' } });
    expect([bomb.status, bomb.body.code]).to.deep.equal([413, 'PAYLOAD_TOO_LARGE']);
  });

  it('a path parameter that is not valid percent-encoding answers 400, never 500', async () => {
    for (const id of ['%ZZ', '%E0%A4%A', '%']) {
      const answer = await send(`/users/${id}`, '{}', {}, 'PATCH');

      expect([answer.status, answer.body.code], id).to.deep.equal([400, 'VALIDATION_FAILED']);
      expect(answer.type).to.match(/^application\/problem\+json/);
    }
  });

  it('a database session ended under a query answers 503 UNAVAILABLE with Retry-After', async () => {
    for (const code of ['57P01', '57P02', '57P03', '08006']) {
      const response = await fetch(`${t.service.url}/session-ended/${code}`);
      const body = (await response.json()) as Record<string, unknown>;

      expect([response.status, body.code], code).to.deep.equal([503, 'UNAVAILABLE']);
      expect(response.headers.get('retry-after'), code).to.equal('5');
    }
  });
});
