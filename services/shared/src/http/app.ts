import express, { type Express, type RequestHandler } from 'express';
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
  app.use(methodNotAllowed(app));
  app.use(notFoundHandler);
  app.use(errorHandler(options.logger));
  return app;
}

/** What this module reads of Express 5's router: its layers, and the route each one holds. */
interface RouteLayer {
  route?: { methods: Record<string, boolean | undefined> };
  match(path: string): boolean;
}

/**
 * For a request no route took: 405 with `Allow` when a route of the service has its path but
 * not its method (GET /auth/login), so a client learns the method, not that the path is gone.
 * Routes mounted under a sub-router (app.use('/audit', router)) are not looked into.
 */
function methodNotAllowed(app: Express): RequestHandler {
  return (req, _res, next) => {
    const layers = (app as unknown as { router: { stack: RouteLayer[] } }).router.stack;
    const allowed = new Set<string>();
    for (const layer of layers) {
      if (!layer.route || !layer.match(req.path)) continue;
      for (const [method, on] of Object.entries(layer.route.methods)) {
        if (on && method !== '_all') allowed.add(method.toUpperCase());
      }
    }
    if (allowed.size === 0) return next();
    const allow = [...allowed].join(', ');
    next(
      commonErrors.METHOD_NOT_ALLOWED(
        `${req.method} is not allowed here; use ${allow}`,
        {},
        { headers: { Allow: allow } },
      ),
    );
  };
}
