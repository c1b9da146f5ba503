import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import type { HttpMetrics } from '../observability/metrics.js';
import { operationalRoutes, type Health } from './health.js';
import { errorHandler, notFoundHandler } from './problem.js';
import { requestContext } from './request-context.js';
import { commonErrors } from './errors.js';

export interface HttpAppOptions {
  logger: Logger;
  metrics: HttpMetrics;
  health: Health;
  bodyLimitBytes: number;
  trustProxyHops: number;
  /** Mounts the service's own routes. */
  routes?: (app: Express) => void;
}

/**
 * The Express bootstrap every service shares: request ids and logging context, security headers,
 * health and metrics, strict JSON bodies of bounded size, then the service's routes, then one
 * problem+json error handler.
 */
export function createHttpApp(options: HttpAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', options.trustProxyHops);
  app.set('query parser', 'simple');

  app.use(requestContext(options.logger, options.metrics));
  app.use(helmet());
  app.use((req, res, next) => {
    // Decided when the response starts, not when the request arrived: a request already in
    // flight at SIGTERM must close its connection too, or the drain waits for the keep-alive
    // timeout of that connection and the client may reuse a connection that is about to go.
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => typeof res;
    res.writeHead = ((...args: unknown[]) => {
      if (options.health.isDraining) res.setHeader('Connection', 'close');
      return writeHead(...args);
    }) as typeof res.writeHead;
    // A response whose headers went out before the drain began cannot say so; its connection
    // is ended once it is complete.
    res.once('finish', () => {
      if (options.health.isDraining && res.getHeader('Connection') !== 'close') req.socket.end();
    });
    next();
  });
  app.use(operationalRoutes(options.health, options.metrics));
  const json = express.json({
    limit: options.bodyLimitBytes,
    strict: true,
    type: ['application/json', 'application/*+json'],
  });
  app.use((req, res, next) => {
    json(req, res, (err?: unknown) => {
      // A compressed body that does not decompress fails with zlib's or brotli's own error,
      // which the body parser marks with status 400 only (no type): it is unreadable like
      // malformed JSON, not a server error.
      const untyped = typeof err === 'object' && err !== null && !('type' in err);
      if (untyped && (err as { status?: unknown }).status === 400) {
        return next(commonErrors.MALFORMED_JSON('The request body could not be decompressed'));
      }
      next(err);
    });
  });
  app.use((req, _res, next) => {
    const hasBody = Number(req.get('content-length') ?? 0) > 0 || req.get('transfer-encoding');
    if (hasBody && !req.is(['application/json', 'application/*+json'])) {
      return next(commonErrors.UNSUPPORTED_MEDIA_TYPE('Send the body as application/json'));
    }
    next();
  });
  options.routes?.(app);
  app.use(notFoundHandler);
  app.use(errorHandler(options.logger));
  return app;
}
