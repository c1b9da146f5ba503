import type { Router } from 'express';
import express from 'express';
import type { Logger } from 'pino';
import type { HttpMetrics } from '../observability/metrics.js';

/** A readiness check resolves when healthy and throws a short, client-safe reason when not. */
export type ReadinessCheck = () => Promise<void>;

const CHECK_TIMEOUT_MS = 2_000;

/** Liveness, readiness (with named checks) and the shutdown flag that turns readiness off. */
export class Health {
  private draining = false;

  constructor(
    private readonly checks: Record<string, ReadinessCheck>,
    private readonly logger: Logger,
  ) {}

  startDraining(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  async readiness(): Promise<{ ready: boolean; checks: Record<string, string> }> {
    const results: Record<string, string> = {};
    if (this.draining) return { ready: false, checks: { shutdown: 'in progress' } };
    await Promise.all(
      Object.entries(this.checks).map(async ([name, check]) => {
        try {
          await withTimeout(check(), CHECK_TIMEOUT_MS);
          results[name] = 'ok';
        } catch (err) {
          results[name] = err instanceof Error ? err.message : 'failed';
          this.logger.warn({ check: name, err }, 'readiness check failed');
        }
      }),
    );
    return { ready: Object.values(results).every((r) => r === 'ok'), checks: results };
  }
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** GET /health/live, GET /health/ready and GET /metrics. */
export function operationalRoutes(health: Health, metrics: HttpMetrics): Router {
  const router = express.Router();
  router.get('/health/live', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/health/ready', async (_req, res) => {
    const { ready, checks } = await health.readiness();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not-ready', checks });
  });
  router.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  return router;
}
