import { expect } from 'chai';
import { request } from 'node:http';
import type { ServiceDefinition } from '@vextrus/shared';
import { startTestService, type TestService } from './support.js';

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('graceful shutdown', () => {
  let t: TestService;
  let release: () => void = () => {};
  let signalEntered: () => void = () => {};

  const slow: ServiceDefinition = {
    name: 'slow',
    defaultPort: 0,
    routes(app) {
      app.get('/slow', async (_req, res) => {
        signalEntered();
        await new Promise<void>((resolve) => (release = resolve));
        res.json({ finished: true });
      });
    },
  };

  beforeEach(async () => {
    t = await startTestService(slow, { SHUTDOWN_TIMEOUT_MS: '5000' });
  });

  afterEach(() => t.close());

  it('lets an in-flight request finish, refuses new connections, then closes the pool', async () => {
    const entered = new Promise<void>((resolve) => (signalEntered = resolve));
    const inFlight = get(`${t.service.url}/slow`);
    await entered;

    const stopped = t.service.stop();
    const ready = await get(`${t.service.url}/health/ready`).catch((err: Error) => err);
    setTimeout(() => release(), 300);
    const response = await inFlight;
    await stopped;

    expect(response).to.deep.equal({ status: 200, body: '{"finished":true}' });
    expect(ready).to.be.instanceOf(Error);
    expect((ready as NodeJS.ErrnoException).code).to.equal('ECONNREFUSED');
    const error = await t.service.runtime.sequelize.query('SELECT 1').catch((err: Error) => err);
    expect(error).to.be.instanceOf(Error);
  });

  it('cuts requests that outlive the shutdown bound', async () => {
    await t.service.stop();
    t = await startTestService(slow, { SHUTDOWN_TIMEOUT_MS: '200' });
    const entered = new Promise<void>((resolve) => (signalEntered = resolve));
    const inFlight = get(`${t.service.url}/slow`).catch((err: Error) => err);
    await entered;

    const started = Date.now();
    await t.service.stop();

    expect(Date.now() - started).to.be.below(2000);
    expect(await inFlight).to.be.instanceOf(Error);
    release();
  });
});
