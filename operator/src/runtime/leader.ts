import type { KubeAccess } from './http.js';
import type { Logger } from 'pino';
import { ApiError, kubeRequest, microTime } from './http.js';
import type { ControllerMetrics } from './metrics.js';

export interface LeaderElectionOptions {
  kubeConfig: KubeAccess;
  namespace: string;
  /** Name of the coordination.k8s.io Lease. */
  name: string;
  /** This replica's identity (the Pod name). */
  identity: string;
  logger: Logger;
  metrics?: ControllerMetrics;
  /** controller-runtime's defaults: 15 s lease, 10 s renew deadline, 2 s retry period. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/**
 * Leader election on a Lease, as client-go does it: a replica takes the Lease when it is free or
 * expired, renews it every retry period, and gives up leading when it cannot renew within the
 * renew deadline (the caller then stops reconciling, so two replicas never reconcile at once).
 * On a clean stop the Lease is released so another replica takes over at once.
 */
export class LeaderElector {
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private timer?: NodeJS.Timeout;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  /** A renewal hanging on a slow API server must not outlast the renew deadline. */
  private readonly requestTimeoutMs: number;

  constructor(private readonly options: LeaderElectionOptions) {
    this.leaseMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryMs = options.retryPeriodMs ?? 2_000;
    this.requestTimeoutMs = Math.max(1_000, Math.floor(this.renewDeadlineMs / 2));
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Resolves once this replica leads; calls onLost if it later loses the Lease. After a loss it
   * may be called again to stand for election anew.
   */
  async run(onLost: () => void): Promise<void> {
    await new Promise<void>((resolve) => {
      const tick = async (): Promise<void> => {
        if (this.stopped) return;
        const ok = await this.tryAcquireOrRenew().catch((err: unknown) => {
          this.options.logger.warn({ err }, 'cannot acquire or renew the leader lease');
          return false;
        });
        if (ok) {
          this.lastRenew = Date.now();
          if (!this.leading) {
            this.leading = true;
            this.options.metrics?.leaderStatus.set({ name: this.options.name }, 1);
            this.options.logger.info({ lease: this.options.name }, 'became leader');
            resolve();
          }
        } else if (this.leading && Date.now() - this.lastRenew > this.renewDeadlineMs) {
          this.leading = false;
          this.options.metrics?.leaderStatus.set({ name: this.options.name }, 0);
          this.options.logger.error({ lease: this.options.name }, 'lost leadership');
          onLost();
          return;
        }
        this.timer = setTimeout(() => void tick(), this.retryMs);
      };
      void tick();
    });
  }

  /** Stops renewing and, if leading, releases the Lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    this.options.metrics?.leaderStatus.set({ name: this.options.name }, 0);
    const lease = await this.read().catch(() => undefined);
    if (lease?.spec.holderIdentity !== this.options.identity) return;
    lease.spec.holderIdentity = '';
    lease.spec.leaseDurationSeconds = 1;
    await this.write(lease).catch(() => undefined);
  }

  private path(name = ''): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${this.options.namespace}/leases`;
    return name ? `${base}/${name}` : base;
  }

  private request<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
    const { kubeConfig } = this.options;
    return kubeRequest<T>(
      kubeConfig,
      method,
      path,
      body,
      'application/json',
      this.requestTimeoutMs,
    );
  }

  private read(): Promise<Lease> {
    return this.request<Lease>('GET', this.path(this.options.name));
  }

  private write(lease: Lease): Promise<Lease> {
    return this.request<Lease>('PUT', this.path(this.options.name), lease);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const desired = {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.round(this.leaseMs / 1000),
      renewTime: microTime(now),
    };
    let lease: Lease;
    try {
      lease = await this.read();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
      await this.request('POST', this.path(), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.options.name, namespace: this.options.namespace },
        spec: { ...desired, acquireTime: microTime(now), leaseTransitions: 0 },
      });
      return true;
    }
    const holder = lease.spec.holderIdentity ?? '';
    const renewed = lease.spec.renewTime ? Date.parse(lease.spec.renewTime) : 0;
    const duration = (lease.spec.leaseDurationSeconds ?? 15) * 1000;
    const expired = renewed + duration < now.getTime();
    if (holder && holder !== this.options.identity && !expired) return false;
    const takingOver = holder !== this.options.identity;
    lease.spec = {
      ...lease.spec,
      ...desired,
      ...(takingOver
        ? { acquireTime: microTime(now), leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 }
        : {}),
    };
    try {
      // The resourceVersion in `lease` makes this a compare-and-swap: a concurrent writer wins.
      await this.write(lease);
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) return false;
      throw err;
    }
  }
}
