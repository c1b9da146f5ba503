import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { runWithRequestContext } from '../observability/context.js';
import { UNMATCHED_ROUTE, type HttpMetrics } from '../observability/metrics.js';

/** Accepted client request ids: short and printable, so they are safe in logs and headers. */
const REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

const QUIET_PATHS = new Set(['/health/live', '/health/ready', '/metrics']);

/** The route template that matched (`/organizations/:id`), never the raw path. */
function routeTemplate(req: Request): string {
  const route = req.route as { path?: unknown } | undefined;
  if (!route || typeof route.path !== 'string') return UNMATCHED_ROUTE;
  return `${req.baseUrl}${route.path}` || '/';
}

/**
 * Gives each request its id (from a valid X-Request-ID or a new UUID), echoes it, runs the rest
 * of the request inside its logging context, and records duration and access log on finish.
 */
export function requestContext(logger: Logger, metrics: HttpMetrics): RequestHandler {
  return (req, res, next) => {
    const given = req.get('x-request-id');
    const reqId = given && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-ID', reqId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeTemplate(req);
      metrics.observe(req.method, route, res.statusCode, seconds);
      const fields = {
        reqId,
        method: req.method,
        route,
        status: res.statusCode,
        durationMs: Math.round(seconds * 1000),
      };
      if (res.statusCode >= 500) logger.error(fields, 'request completed');
      else if (QUIET_PATHS.has(req.path)) logger.debug(fields, 'request completed');
      else logger.info(fields, 'request completed');
    });
    const userAgent = req.get('user-agent')?.slice(0, 256);
    runWithRequestContext({ reqId, clientIp: req.ip, userAgent }, next);
  };
}
