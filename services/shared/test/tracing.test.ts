import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPlane, freePort, spawnTs, type TestPlane } from '@vextrus/devkit';
import { startTracing } from '@vextrus/shared/tracing';

describe('tracing', () => {
  it('when OTEL_EXPORTER_OTLP_ENDPOINT is not set, it stays off', async () => {
    const handle = await startTracing('test', {});

    expect(handle.enabled).to.equal(false);
  });

  describe('when OTEL_EXPORTER_OTLP_ENDPOINT is set', () => {
    let collector: Server;
    let plane: TestPlane;
    const received: { path: string; body: string }[] = [];

    before(async () => {
      plane = await createPlane('tracing');
      collector = createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
        req.on('end', () => {
          received.push({ path: req.url ?? '', body });
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        });
      });
      await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    });
    after(async () => {
      collector.close();
      await plane.close();
    });

    it('exports spans of HTTP requests and SQL queries to the collector', async function () {
      // A cold start of the service with the OpenTelemetry SDK takes seconds; on a busy 2-core
      // machine more than 15 of them.
      this.timeout(90_000);
      const { port: collectorPort } = collector.address() as AddressInfo;
      const port = await freePort();
      const child = spawnTs('services/organization/src/main.ts', {
        DATABASE_URL: plane.appUrl,
        PORT: String(port),
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collectorPort}`,
      });
      await child.waitForOutput((out) => out.includes('"listening"'), 60_000);

      const ready = await fetch(`http://127.0.0.1:${port}/health/ready`);
      child.child.kill('SIGTERM');
      const code = await child.exited;

      expect(ready.status).to.equal(200);
      expect(code).to.equal(0);
      const traces = received.filter((r) => r.path === '/v1/traces').map((r) => r.body);
      expect(traces.join('\n')).to.include('organization');
      expect(traces.join('\n')).to.match(/SELECT|pg\.query/);
      expect(traces.join('\n')).to.include('GET');
    });
  });
});
