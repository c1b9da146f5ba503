import type { Server } from 'node:http';

import type { KubernetesObject, V1Job } from '@kubernetes/client-node';
import type { Database } from '@vextrus/migrations';
import type { Logger } from 'pino';
import { Controller } from './runtime/controller.js';
import { EventRecorder } from './runtime/events.js';
import { startProbeServer } from './runtime/health.js';
import { Informer, stripMetadata } from './runtime/informer.js';
import { observedKubeConfig, type KubeAccess } from './runtime/http.js';
import { LeaderElector } from './runtime/leader.js';
import { createControllerMetrics, type ControllerMetrics } from './runtime/metrics.js';
import { COMPONENT_LABEL, MIGRATION_COMPONENT, MigrationSlots } from './tenant/migration-job.js';
import { reconcileTenant, type OperatorSettings } from './tenant/reconciler.js';
import { TENANT_LABEL, TENANTS_PATH, type Tenant } from './tenant/types.js';

const OWNED_CACHE_WAIT_MS = 10_000;

export interface OperatorOptions {
  kubeConfig: KubeAccess;
  db: Database;
  logger: Logger;
  settings: OperatorSettings;
  /** This replica's name, for leader election and Events. */
  identity: string;
  /** Port of /healthz, /readyz and /metrics; 0 picks a free one, undefined serves none. */
  probePort?: number;
  leaderElection?: boolean;
  workers?: number;
  /** Restart a watch that brought nothing, not even a bookmark, for this long. */
  watchSilenceMs?: number;
}

export interface RunningOperator {
  metrics: ControllerMetrics;
  controller: Controller;
  leader?: LeaderElector;
  probePort?: number;
  /** Resolves once this replica leads and reconciles. */
  leading: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Wires the tenant controller: informers on Tenants and on what the operator owns (migration
 * Jobs, Secrets, Traefik Middlewares and IngressRoutes, mapped back to their Tenant by label),
 * a work queue with backoff, leader election on a Lease, and the probe server. Caches warm up
 * on every replica; only the leader reconciles.
 */
export async function startOperator(options: OperatorOptions): Promise<RunningOperator> {
  const { logger, settings } = options;
  const metrics = createControllerMetrics();
  // Every request goes through this configuration, so the counter sees them all.
  const kubeConfig = observedKubeConfig(options.kubeConfig, (verb, resource) =>
    metrics.apiRequests.inc({ verb, resource }),
  );
  const namespace = settings.namespace;
  const events = new EventRecorder(kubeConfig, 'vextrus-operator', options.identity, logger);
  const informer = <T extends KubernetesObject>(
    name: string,
    path: string,
    labelSelector?: string,
    transform?: (object: T) => T,
  ) =>
    new Informer<T>({
      name,
      kubeConfig,
      path,
      labelSelector,
      logger,
      silenceTimeoutMs: options.watchSilenceMs,
      transform,
    });
  // The caches keep only what the reconciler reads (memory grows with the number of tenants):
  // Tenants without managedFields; Jobs without their Pod template; Secrets as a name and
  // labels, since they serve only to map an event back to its Tenant; gateway objects with
  // their spec and owners besides.
  const tenants = informer<Tenant>('tenants', TENANTS_PATH);
  const jobs = informer<V1Job>(
    'jobs',
    `/apis/batch/v1/namespaces/${namespace}/jobs`,
    `${COMPONENT_LABEL}=${MIGRATION_COMPONENT}`,
    (job) => {
      const { metadata } = stripMetadata(job);
      return { metadata, status: job.status };
    },
  );
  const reference = (object: KubernetesObject): KubernetesObject => {
    const { name, namespace, labels, uid, resourceVersion } = object.metadata ?? {};
    return { metadata: { name, namespace, labels, uid, resourceVersion } };
  };
  // Gateway objects keep what the routes step compares with its desired objects as well, so
  // that a resync applies nothing when they are as they should be.
  const gateway = (object: KubernetesObject): KubernetesObject => {
    const { ownerReferences, deletionTimestamp } = object.metadata ?? {};
    const { metadata } = reference(object);
    const { spec } = object as { spec?: unknown };
    const kept: KubernetesObject & { spec?: unknown } = {
      metadata: { ...metadata, ownerReferences, deletionTimestamp },
      spec,
    };
    return kept;
  };
  const [secrets, middlewares, ingressroutes] = [
    informer('secrets', `/api/v1/namespaces/${namespace}/secrets`, TENANT_LABEL, reference),
    informer(
      'middlewares',
      `/apis/traefik.io/v1alpha1/namespaces/${namespace}/middlewares`,
      TENANT_LABEL,
      gateway,
    ),
    informer(
      'ingressroutes',
      `/apis/traefik.io/v1alpha1/namespaces/${namespace}/ingressroutes`,
      TENANT_LABEL,
      gateway,
    ),
  ];
  const owned = [secrets, middlewares, ingressroutes];

  const slots = new MigrationSlots(jobs);
  const controller = new Controller({
    name: 'tenant',
    logger,
    metrics,
    workers: options.workers ?? 4,
    reconcile: (key) =>
      reconcileTenant(
        {
          kubeConfig,
          db: options.db,
          logger,
          events,
          tenants,
          jobs,
          slots,
          owned: { secrets, middlewares, ingressroutes },
          settings,
        },
        key,
      ),
  });

  tenants.on((type, tenant, previous) => {
    controller.queue.add(tenant.metadata?.name ?? '');
    // Another tenant may wait for one of these hosts: let it look again.
    if (type === 'delete' || type === 'update') {
      const hosts = new Set([...(tenant.spec?.hosts ?? []), ...(previous?.spec?.hosts ?? [])]);
      for (const other of tenants.list()) {
        if (other.spec.hosts.some((host) => hosts.has(host))) {
          controller.queue.add(other.metadata?.name ?? '');
        }
      }
    }
  });
  for (const source of [jobs, ...owned] as Informer<KubernetesObject>[]) {
    source.on((_type, object) => {
      const slug = object.metadata?.labels?.[TENANT_LABEL];
      if (slug) controller.queue.add(slug);
    });
  }
  // A migration Job that finished or went away frees a slot: the tenants waiting longest for
  // one are reconciled now rather than at their next poll.
  jobs.on(() => {
    for (const key of slots.nextWaiting(settings.migrations.concurrency)) controller.queue.add(key);
  });

  let synced = false;
  const caches = [tenants, jobs, ...owned];
  const warm = Promise.all([tenants.start(), jobs.start()]).then(() => {
    synced = true;
  });
  // Not awaited: without Traefik's CRDs their lists fail until installed (the routes step says
  // GatewayNotInstalled). The reconciler trusts these caches only for "present"; a miss is asked
  // of the API server.
  for (const cache of owned) void cache.start();

  let probe: Server | undefined;
  if (options.probePort !== undefined) {
    probe = await startProbeServer({
      port: options.probePort,
      registry: metrics.registry,
      live: () => true,
      ready: () => synced,
    });
  }

  let leader: LeaderElector | undefined;
  let stopping = false;
  let becameLeader!: () => void;
  const leading = new Promise<void>((resolve) => (becameLeader = resolve));
  const reconcileAll = (): void => {
    for (const tenant of tenants.list()) controller.queue.add(tenant.metadata?.name ?? '');
  };
  const campaign = async (): Promise<void> => {
    await warm;
    // The gateway caches get a few seconds to fill, so that the first pass over every tenant
    // finds the routes there instead of asking the API server for each; without Traefik's CRDs
    // they never fill, and reconciling starts anyway.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(owned.map((cache) => cache.start())),
      new Promise((resolve) => (timer = setTimeout(resolve, OWNED_CACHE_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (stopping) return;
    if (options.leaderElection === false) {
      controller.start();
      becameLeader();
      return;
    }
    const elector = new LeaderElector({
      kubeConfig,
      namespace,
      name: 'vextrus-operator-leader',
      identity: options.identity,
      logger,
      metrics,
    });
    leader = elector;
    // A replica that lost the Lease (say, the API server was away longer than the renew
    // deadline) stops reconciling at once, like controller-runtime; unlike a process that exits,
    // it then stands for election again and, once it leads, reconciles every tenant anew.
    for (;;) {
      let lost!: () => void;
      const lostLease = new Promise<void>((resolve) => (lost = resolve));
      await elector.run(() => lost());
      if (stopping) return;
      controller.start();
      reconcileAll();
      becameLeader();
      await lostLease;
      if (stopping) return;
      await controller.stop();
      logger.warn({ lease: 'vextrus-operator-leader' }, 'standing for election again');
    }
  };
  void campaign();

  return {
    metrics,
    controller,
    get leader() {
      return leader;
    },
    probePort: probe ? (probe.address() as { port: number }).port : undefined,
    leading,
    async stop() {
      stopping = true;
      await controller.stop();
      await leader?.stop();
      for (const cache of caches) cache.stop();
      // The probe server answers health and metrics only: its open connections (a request
      // half sent, a keep-alive one) are cut, or closing would wait for them for up to the
      // headers timeout, past the pod's grace period.
      await new Promise<void>((resolve) => {
        if (!probe) return resolve();
        probe.close(() => resolve());
        probe.closeAllConnections();
      });
    },
  };
}
