import type { Logger } from 'pino';
import type { ControllerMetrics } from './metrics.js';
import { StepError } from './errors.js';
import { WorkQueue, type BackoffOptions } from './queue.js';

/** What a reconcile asks for next; an error is not a result (it is retried with backoff). */
export interface Result {
  /** Reconcile this key again after this long (periodic resync, waiting on a Job, …). */
  requeueAfterMs?: number;
}

/**
 * The delay of a periodic requeue: a random share of up to a fifth is taken off the period, so
 * that keys reconciled together (all of them when a replica starts leading) come back spread
 * out instead of as one wave, and none waits longer than one period.
 */
export function resyncDelay(periodMs: number, random: () => number = Math.random): number {
  return Math.round(periodMs * (1 - 0.2 * random()));
}

export type Reconcile = (key: string) => Promise<Result>;

export interface ControllerOptions {
  name: string;
  reconcile: Reconcile;
  logger: Logger;
  metrics?: ControllerMetrics;
  /** How many keys are reconciled at once (each key by one worker at a time). */
  workers?: number;
  backoff?: BackoffOptions;
}

/**
 * Runs reconcile for the keys in its queue with a bounded number of workers: success forgets
 * the key's failures and honours requeueAfter; an error requeues it with per-key exponential
 * backoff.
 */
export class Controller {
  private current: WorkQueue;
  private running: Promise<void>[] = [];
  private stopped = false;

  constructor(private readonly options: ControllerOptions) {
    this.current = this.newQueue();
  }

  /** The queue of the current run; a restart after stop() starts with a new, empty one. */
  get queue(): WorkQueue {
    return this.current;
  }

  /**
   * Starts the workers. After stop() (a replica that lost the Lease and won it again), it starts
   * over with an empty queue: the caller adds every key again.
   */
  start(): void {
    if (this.stopped) {
      this.current = this.newQueue();
      this.stopped = false;
    }
    const workers = this.options.workers ?? 4;
    for (let i = 0; i < workers; i++) this.running.push(this.work());
  }

  /** Stops taking keys and waits for the reconciles in progress to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.current.shutDown();
    await Promise.all(this.running);
    this.running = [];
  }

  private newQueue(): WorkQueue {
    return new WorkQueue(this.options.name, this.options.metrics, this.options.backoff);
  }

  private async work(): Promise<void> {
    const queue = this.current;
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      await this.process(queue, key);
      queue.done(key);
    }
  }

  private async process(queue: WorkQueue, key: string): Promise<void> {
    const { metrics, name, logger } = this.options;
    const started = process.hrtime.bigint();
    let result = 'success';
    try {
      const outcome = await this.options.reconcile(key);
      queue.forget(key);
      if (outcome.requeueAfterMs !== undefined) {
        result = 'requeue_after';
        queue.addAfter(key, outcome.requeueAfterMs);
      }
    } catch (err) {
      metrics?.reconcileErrors.inc({ controller: name });
      result = 'error';
      const retryInMs = queue.addRateLimited(key);
      const step = err instanceof StepError ? err.step : undefined;
      logger.warn({ key, step, err, retryInMs }, 'reconcile failed; retrying');
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics?.reconcileTime.observe({ controller: name }, seconds);
      metrics?.queueWorkDuration.observe({ name }, seconds);
      metrics?.reconcileTotal.inc({ controller: name, result });
    }
  }
}
