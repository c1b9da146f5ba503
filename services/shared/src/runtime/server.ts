import { STATUS_CODES, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import type { Logger } from 'pino';
import type { Health } from '../http/health.js';
import { commonErrors } from '../http/errors.js';
import { PROBLEM_CONTENT_TYPE, problemDocument } from '../http/problem.js';

/**
 * Answers a request that Node's HTTP parser refused before Express saw it (headers beyond the
 * server's limit, bytes that are not HTTP) with a problem+json document, as every other refusal
 * is answered, instead of Node's bare status line; then closes the connection, whose remaining
 * bytes cannot be trusted.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  // The statuses Node itself would answer with, each with its stable code.
  const error =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? commonErrors.HEADERS_TOO_LARGE('The request line and headers exceed what the server takes')
      : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
        ? commonErrors.PAYLOAD_TOO_LARGE('The chunk extensions of the body are too large')
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? commonErrors.REQUEST_TIMEOUT('The request did not arrive completely in time')
          : commonErrors.MALFORMED_REQUEST('The request could not be parsed as HTTP/1.1');
  const body = problemDocument(error);
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n` +
      `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}

export function listen(app: Express, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.on('clientError', answerClientError);
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
 * remaining connections are cut), then the pool closes within what is left of the bound (at
 * least RELEASE_MIN_MS), so that a query stuck in PostgreSQL cannot hold the exit.
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
  const started = Date.now();
  const outcome = await Promise.race([closed, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    logger.warn({ timeoutMs: options.timeoutMs }, 'in-flight requests cut at shutdown deadline');
    server.closeAllConnections();
    await closed;
  }
  // Closing the pool waits for every borrowed connection to come back. A request cut at the
  // deadline may still hold one on a query that waits (on a lock, say) for as long as
  // PostgreSQL lets it, so the pool gets what is left of the bound, and at least a moment;
  // the process exits after that, which closes whatever is still open.
  const left = Math.max(RELEASE_MIN_MS, options.timeoutMs - (Date.now() - started));
  let releaseTimer: NodeJS.Timeout | undefined;
  const released = await Promise.race([
    options.release().then(() => 'released' as const),
    new Promise<'timeout'>((resolve) => {
      releaseTimer = setTimeout(() => resolve('timeout'), left);
    }),
  ]);
  clearTimeout(releaseTimer);
  if (released === 'timeout') {
    logger.warn({ waitedMs: left }, 'database connections still busy at shutdown; left open');
  }
}

/** The least time the pool gets to close after the requests are done or cut. */
const RELEASE_MIN_MS = 1_000;
