import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import type { Logger } from 'pino';
import type { Health } from '../http/health.js';

export function listen(app: Express, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}

export interface ShutdownOptions {
  server: Server;
  health: Health;
  logger: Logger;
  /** Time readiness reports false before the listener closes. */
  delayMs: number;
  /** Bound on how long in-flight requests may take to finish. */
  timeoutMs: number;
  /** Releases what the service holds (the database pool) once requests are done. */
  release: () => Promise<void>;
}

/**
 * Graceful shutdown: readiness turns false, the listener closes so new connections are refused,
 * idle keep-alive connections close, in-flight requests finish within the bound (after which the
 * remaining connections are cut), then the pool closes.
 */
export async function shutdownGracefully(options: ShutdownOptions): Promise<void> {
  const { server, health, logger } = options;
  health.startDraining();
  if (options.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, options.delayMs));

  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
  });
  const outcome = await Promise.race([closed, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    logger.warn({ timeoutMs: options.timeoutMs }, 'in-flight requests cut at shutdown deadline');
    server.closeAllConnections();
    await closed;
  }
  await options.release();
}
