import { collectDefaultMetrics, Histogram, Registry } from 'prom-client';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** The label for requests that matched no route: never the raw path, so series stay bounded. */
export const UNMATCHED_ROUTE = '<unmatched>';

export interface HttpMetrics {
  registry: Registry;
  observe(method: string, route: string, status: number, seconds: number): void;
}

/** One registry per app (not prom-client's global one), with default process metrics. */
export function createHttpMetrics(service: string): HttpMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Duration of HTTP requests by method, route template and status class',
    labelNames: ['method', 'route', 'status_class'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return {
    registry,
    observe(method, route, status, seconds) {
      duration.observe(
        {
          method: KNOWN_METHODS.has(method) ? method : 'OTHER',
          route,
          status_class: `${Math.floor(status / 100)}xx`,
        },
        seconds,
      );
    },
  };
}
