import { createServer, type Server, type ServerResponse } from 'node:http';
import {
  commonErrors,
  PROBLEM_CONTENT_TYPE,
  problemDocument,
  type AppError,
} from '@vextrus/shared';
import type { Registry } from 'prom-client';

export interface ProbeServerOptions {
  port: number;
  host?: string;
  registry: Registry;
  /** Live while the process can make progress. */
  live: () => boolean;
  /** Ready once the caches have synced (leader or not: a standby replica is ready too). */
  ready: () => boolean;
}

/** Answers with the problem+json document of `error`, as the services answer their errors. */
function sendProblem(res: ServerResponse, error: AppError, path: string): void {
  res.writeHead(error.status, { 'content-type': PROBLEM_CONTENT_TYPE });
  res.end(problemDocument(error, path));
}

/**
 * /healthz, /readyz and /metrics of the operator. The probes answer a short text (only their
 * status matters to the kubelet); everything else that fails answers problem+json.
 */
export async function startProbeServer(options: ProbeServerOptions): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/healthz' || path === '/readyz') {
      const ok = path === '/healthz' ? options.live() : options.ready();
      res
        .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ok ? 'ok\n' : 'not ready\n');
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
        () => sendProblem(res, commonErrors.INTERNAL('The metrics could not be collected'), path),
      );
      return;
    }
    sendProblem(
      res,
      commonErrors.ROUTE_NOT_FOUND('The operator serves /healthz, /readyz and /metrics'),
      path,
    );
  });
  // A port in use or not allowed rejects, instead of an unhandled 'error' event.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
