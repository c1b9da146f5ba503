import type { ControllerMetrics } from './metrics.js';

export interface BackoffOptions {
  /** Delay of the first retry of a failing key. */
  baseDelayMs: number;
  /** Upper bound of the per-key exponential backoff. */
  maxDelayMs: number;
}

const DEFAULT_BACKOFF: BackoffOptions = { baseDelayMs: 500, maxDelayMs: 5 * 60_000 };

/**
 * A work queue with controller-runtime's guarantees:
 * - a key is queued at most once however often it is added (deduplication);
 * - a key is handed to one worker at a time: added again while being processed, it is queued
 *   once more only after done();
 * - failing keys come back after a per-key exponential backoff, reset by forget();
 * - addAfter() requeues a key later (the earliest requested time wins).
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly addedAt = new Map<string, number>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private shuttingDown = false;

  constructor(
    readonly name: string,
    private readonly metrics?: ControllerMetrics,
    private readonly backoff: BackoffOptions = DEFAULT_BACKOFF,
  ) {}

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics?.queueAdds.inc({ name: this.name });
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds the key after `delayMs`; an earlier pending request for the key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** Adds the key after its next backoff delay, and returns that delay. */
  addRateLimited(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const delay = Math.min(this.backoff.maxDelayMs, this.backoff.baseDelayMs * 2 ** failures);
    this.metrics?.queueRetries.inc({ name: this.name });
    this.addAfter(key, delay);
    return delay;
  }

  /** Forgets the key's failures, so its next failure starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /**
   * The next key to work on; resolves undefined once the queue shuts down, even while keys are
   * still queued: a replica that stops (or lost the leader Lease) must not reconcile them.
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks the key's processing finished; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
    this.updateDepth();
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  private push(key: string): void {
    this.addedAt.set(key, Date.now());
    const waiter = this.waiters.shift();
    if (waiter) waiter(this.take(key));
    else this.queue.push(key);
    this.updateDepth();
  }

  private take(key: string): string {
    this.dirty.delete(key);
    this.processing.add(key);
    const added = this.addedAt.get(key);
    if (added !== undefined) {
      this.metrics?.queueLatency.observe({ name: this.name }, (Date.now() - added) / 1000);
      this.addedAt.delete(key);
    }
    this.updateDepth();
    return key;
  }

  private updateDepth(): void {
    this.metrics?.queueDepth.set({ name: this.name }, this.queue.length);
  }
}
