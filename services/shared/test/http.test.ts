import { expect } from 'chai';
import express from 'express';
import { ConnectionAcquireTimeoutError, ConnectionRefusedError, DatabaseError } from 'sequelize';
import {
  AppError,
  AuditError,
  AuditErrorCode,
  commonErrors,
  type ServiceDefinition,
} from '@vextrus/shared';
import { startTestService, type TestService } from './support.js';

/** A service with a few routes that exercise the bootstrap's error paths. */
const probe: ServiceDefinition = {
  name: 'probe',
  defaultPort: 0,
  routes(app) {
    app.post('/echo', (req, res) => {
      res.json({ received: req.body as unknown });
    });
    app.get('/boom', () => {
      throw new Error('database password is hunter2 and the stack is secret');
    });
    app.get('/pool-exhausted', () => {
      // What Sequelize throws when no pooled connection frees up within the pool's wait.
      throw new ConnectionAcquireTimeoutError(new Error('Operation timeout'));
    });
    app.get('/database-down', () => {
      throw new ConnectionRefusedError(
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      );
    });
    app.get('/audit-chain-locked', () => {
      // An audit record whose chain row stayed locked past lock_timeout: the change rolled back.
      const locked = new DatabaseError(
        Object.assign(new Error('canceling statement due to lock timeout'), {
          code: '55P03',
          sql: 'SELECT audit_append(...)',
        }),
      );
      throw new AuditError(AuditErrorCode.WriteFailed, 'cannot record audit event x.y', {
        cause: locked,
      });
    });
    app.get('/serialization-failure', () => {
      throw new DatabaseError(
        Object.assign(new Error('could not serialize access due to concurrent update'), {
          code: '40001',
          sql: 'UPDATE organizations SET …',
        }),
      );
    });
    app.get('/conflict', () => {
      throw commonErrors.CONFLICT('Code ACME is taken', { field: 'code' });
    });
    const items = express.Router();
    items.get('/:id', (req, res) => {
      res.json({ id: req.params.id });
    });
    app.use('/items', items);
  },
};

describe('HTTP bootstrap', () => {
  let t: TestService;
  before(async () => {
    t = await startTestService(probe, { HTTP_BODY_LIMIT_BYTES: '2048' });
  });
  after(() => t.close());

  async function problem(response: Response): Promise<Record<string, unknown>> {
    expect(response.headers.get('content-type')).to.match(/^application\/problem\+json/);
    return (await response.json()) as Record<string, unknown>;
  }

  it('when the body is malformed JSON, it answers 400 MALFORMED_JSON', async () => {
    const response = await fetch(`${t.service.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name": ',
    });

    expect(response.status).to.equal(400);
    expect(await problem(response)).to.include({ code: 'MALFORMED_JSON', status: 400 });
  });

  it('when the body is a bare JSON string rather than an object, it answers 400', async () => {
    const response = await fetch(`${t.service.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '"just a string"',
    });

    expect(response.status).to.equal(400);
    expect(await problem(response)).to.include({ code: 'MALFORMED_JSON' });
  });

  it('when the body exceeds the limit, it answers 413 PAYLOAD_TOO_LARGE', async () => {
    const response = await fetch(`${t.service.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ blob: 'x'.repeat(4096) }),
    });

    expect(response.status).to.equal(413);
    expect(await problem(response)).to.include({ code: 'PAYLOAD_TOO_LARGE' });
  });

  it('when the body is not JSON, it answers 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const response = await fetch(`${t.service.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'hello',
    });

    expect(response.status).to.equal(415);
    expect(await problem(response)).to.include({ code: 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('when no route matches, it answers 404 ROUTE_NOT_FOUND', async () => {
    const response = await fetch(`${t.service.url}/no/such/thing`);

    expect(response.status).to.equal(404);
    expect(await problem(response)).to.include({
      code: 'ROUTE_NOT_FOUND',
      instance: '/no/such/thing',
    });
  });

  it('when a handler throws unexpectedly, it answers 500 without internals', async () => {
    const response = await fetch(`${t.service.url}/boom`);
    const body = await problem(response);

    expect(response.status).to.equal(500);
    expect(body.code).to.equal('INTERNAL');
    expect(JSON.stringify(body)).not.to.match(/hunter2|stack|at .*\.ts/);
    const logged = t.logs.lines.find((line) => line.msg === 'unexpected error');
    expect(JSON.stringify(logged)).to.include('hunter2');
  });

  for (const [path, detail] of [
    ['/pool-exhausted', /connection of this service is busy/],
    ['/database-down', /database cannot be reached/],
    ['/audit-chain-locked', /locked by other work/],
    ['/serialization-failure', /conflicted with concurrent changes/],
  ] as const) {
    it(`when the database is out of reach (${path}), it answers 503 UNAVAILABLE with Retry-After`, async () => {
      const response = await fetch(`${t.service.url}${path}`);
      expect(response.status).to.equal(503);
      expect(response.headers.get('retry-after')).to.equal('5');
      const body = await problem(response);
      expect(body.code).to.equal('UNAVAILABLE');
      expect(body.detail).to.match(detail);
      expect(JSON.stringify(body)).not.to.match(/ECONNREFUSED|127\.0\.0\.1|timeout/i);
    });
  }

  it('renders a catalogue error with its status, code and extra members', async () => {
    const response = await fetch(`${t.service.url}/conflict`);

    expect(response.status).to.equal(409);
    expect(await problem(response)).to.include({
      code: 'CONFLICT',
      detail: 'Code ACME is taken',
      field: 'code',
      type: 'urn:vextrus:problem:conflict',
    });
  });

  it('sets security headers and hides the framework', async () => {
    const response = await fetch(`${t.service.url}/health/live`);

    expect(response.headers.get('x-content-type-options')).to.equal('nosniff');
    expect(response.headers.get('x-powered-by')).to.equal(null);
  });

  describe('request ids', () => {
    it('echoes a valid X-Request-ID and writes it into the log lines of that request', async () => {
      const response = await fetch(`${t.service.url}/boom`, {
        headers: { 'x-request-id': 'trace-abc.123' },
      });
      const body = await problem(response);

      expect(response.headers.get('x-request-id')).to.equal('trace-abc.123');
      expect(body.requestId).to.equal('trace-abc.123');
      const lines = t.logs.lines.filter((line) => line.reqId === 'trace-abc.123');
      expect(lines.map((line) => line.msg)).to.include.members([
        'unexpected error',
        'request completed',
      ]);
    });

    it('replaces an unacceptable X-Request-ID with a generated one', async () => {
      const response = await fetch(`${t.service.url}/health/live`, {
        headers: { 'x-request-id': 'bad id with spaces <script>' },
      });

      expect(response.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
    });

    it('generates an id when none is given', async () => {
      const first = await fetch(`${t.service.url}/health/live`);
      const second = await fetch(`${t.service.url}/health/live`);

      expect(first.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
      expect(first.headers.get('x-request-id')).not.to.equal(second.headers.get('x-request-id'));
    });
  });

  describe('health', () => {
    it('answers live and, with the database reachable, ready', async () => {
      const live = await fetch(`${t.service.url}/health/live`);
      const ready = await fetch(`${t.service.url}/health/ready`);

      expect(live.status).to.equal(200);
      expect(ready.status).to.equal(200);
      expect(await ready.json()).to.deep.equal({ status: 'ready', checks: { database: 'ok' } });
    });
  });

  describe('metrics', () => {
    async function seriesCount(): Promise<number> {
      const text = await (await fetch(`${t.service.url}/metrics`)).text();
      return text.split('\n').filter((l) => l.startsWith('http_request_duration_seconds_count'))
        .length;
    }

    it('labels requests by route template, so 1,000 distinct paths add a bounded set of series', async () => {
      await fetch(`${t.service.url}/items/warm-up`);
      await fetch(`${t.service.url}/unknown/warm-up`);
      const before = await seriesCount();

      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(
          Array.from({ length: 50 }, (_, i) => [
            fetch(`${t.service.url}/items/${batch}-${i}`).then((r) => r.arrayBuffer()),
            fetch(`${t.service.url}/unknown/${batch}/${i}`).then((r) => r.arrayBuffer()),
          ]).flat(),
        );
      }
      const after = await seriesCount();
      const text = await (await fetch(`${t.service.url}/metrics`)).text();

      expect(after - before).to.be.at.most(1);
      expect(text).to.include('route="/items/:id"');
      expect(text).to.include('route="<unmatched>"');
      expect(text).not.to.match(/route="\/items\/\d/);
    });

    it('folds unknown HTTP methods into OTHER', async () => {
      await fetch(`${t.service.url}/items/1`, { method: 'PROPFIND' });
      const text = await (await fetch(`${t.service.url}/metrics`)).text();

      expect(text).to.include('method="OTHER"');
      expect(text).not.to.include('PROPFIND');
    });
  });

  it('exposes AppError for services that subclass the catalogue', () => {
    const error = commonErrors.NOT_FOUND('No organization 42');

    expect(error).to.be.instanceOf(AppError);
    expect(error.status).to.equal(404);
  });
});
