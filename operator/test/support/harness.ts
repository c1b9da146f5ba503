import { CustomObjectsApi } from '@kubernetes/client-node';
import {
  createPlane,
  prepareForOperator,
  silent,
  startCluster,
  waitUntil,
  type Cluster,
  type ClusterOptions,
  type TestPlane,
} from '@vextrus/devkit';
import { startOperator, type RunningOperator, type Tenant } from '@vextrus/operator';
import type { MigrationJobSettings } from '../../src/tenant/migration-job.js';
import type { OperatorSettings } from '../../src/tenant/reconciler.js';

/*
 * What the operator's integration tests share: a real kube-apiserver (with etcd and
 * kube-controller-manager) from devkit's startCluster, a PostgreSQL plane of the test's own, and
 * operators started in-process against both. The one simulated part is devkit's LocalNode, a fake
 * kubelet that runs the migration Jobs' Pods as local processes.
 */

export const NAMESPACE = 'vextrus';
/** The Tenant resource, as the custom objects API addresses it. */
export const TENANT_RESOURCE = {
  group: 'platform.vextrus.dev',
  version: 'v1alpha1',
  plural: 'tenants',
};
/** Traefik's resources in the operator's namespace; add the plural and the name. */
export const TRAEFIK = { group: 'traefik.io', version: 'v1alpha1', namespace: NAMESPACE };
/** The migrations image of the operator's settings, unless a test names another. */
export const MIGRATIONS_IMAGE = 'vextrus/migrations:test';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Tenant named after its slug, with hosts, administrator and organization derived from it. */
export function tenantBody(slug: string, spec: Partial<Tenant['spec']> = {}): Tenant {
  return {
    apiVersion: 'platform.vextrus.dev/v1alpha1',
    kind: 'Tenant',
    metadata: { name: slug },
    spec: {
      slug,
      displayName: `${slug} Construction`,
      hosts: [`${slug}.localhost`],
      firstAdministrator: { email: `admin@${slug}.test`, name: 'Ada Admin' },
      firstOrganization: { name: `${slug} Ltd`, code: slug.toUpperCase().replace(/-/g, '') },
      ...spec,
    },
  };
}

export const condition = (tenant: Tenant, type: string) =>
  tenant.status?.conditions?.find((c) => c.type === type);

export const ready = (tenant: Tenant) => condition(tenant, 'Ready')?.status === 'True';

/** How many reconciles an operator ran, whatever their result. */
export async function reconciles(operator: RunningOperator): Promise<number> {
  const metric = await operator.metrics.reconcileTotal.get();
  return metric.values.reduce((sum, value) => sum + value.value, 0);
}

/** What a test changes in the operator's settings; the rest are the ones below. */
export interface SettingsChanges {
  resyncMs?: number;
  migrations?: Partial<MigrationJobSettings>;
}

export function operatorSettings(changes: SettingsChanges = {}): OperatorSettings {
  return {
    namespace: NAMESPACE,
    migrations: {
      namespace: NAMESPACE,
      image: MIGRATIONS_IMAGE,
      databaseSecret: 'vextrus-database-owner',
      concurrency: 4,
      ...changes.migrations,
    },
    routes: {
      namespace: NAMESPACE,
      auth: { name: 'vextrus-auth', port: 3001 },
      organization: { name: 'vextrus-organization', port: 3002 },
      entryPoints: ['web'],
    },
    resyncMs: changes.resyncMs ?? 2_000,
    urlScheme: 'http',
  };
}

export interface HarnessOptions {
  /** Prefix of the plane's database name. */
  plane: string;
  /** Passed to startCluster, e.g. the images the local node runs. */
  cluster?: ClusterOptions;
  /**
   * Runs while the cluster starts, before the plane is made: a suite that runs its own
   * PostgreSQL starts it here and points createPlane at it.
   */
  beforePlane?: () => Promise<void>;
}

export interface OperatorStart {
  /** The replica's name, for leader election and Events. */
  identity: string;
  settings?: SettingsChanges;
  leaderElection?: boolean;
  probePort?: number;
}

export interface Harness {
  cluster: Cluster;
  plane: TestPlane;
  custom: CustomObjectsApi;
  /** Starts an operator in this process; stop() stops it unless the test did. */
  startOperator(start: OperatorStart): Promise<RunningOperator>;
  stopOperator(operator: RunningOperator): Promise<void>;
  /** Stops every operator still running. */
  stopOperators(): Promise<void>;
  apply(slug: string, spec?: Partial<Tenant['spec']>): Promise<unknown>;
  read(name: string): Promise<Tenant>;
  list(): Promise<Tenant[]>;
  /** Polls the Tenant until `test` holds, and returns it. */
  waitFor(name: string, what: string, test: (t: Tenant) => boolean, ms?: number): Promise<Tenant>;
  /** Waits until the API server no longer has the Tenant. */
  waitGone(name: string): Promise<void>;
  /** Stops the operators, then the cluster, then closes the plane. */
  stop(): Promise<void>;
}

/** Starts the cluster and the plane side by side, and readies the cluster for the operator. */
export async function startHarness(options: HarnessOptions): Promise<Harness> {
  const [clusterResult, planeResult] = await Promise.allSettled([
    startCluster(options.cluster),
    (async () => {
      await options.beforePlane?.();
      return createPlane(options.plane);
    })(),
  ]);
  // Do not leave half of it running: stop what did start, then report why the rest did not.
  if (clusterResult.status === 'rejected') {
    if (planeResult.status === 'fulfilled') await planeResult.value.close();
    throw clusterResult.reason;
  }
  if (planeResult.status === 'rejected') {
    await clusterResult.value.stop();
    throw planeResult.reason;
  }
  const cluster = clusterResult.value;
  const plane = planeResult.value;
  const custom = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
  const operators: RunningOperator[] = [];
  const stopOperators = async () => {
    for (const operator of operators.splice(0)) await operator.stop();
  };
  const harness: Harness = {
    cluster,
    plane,
    custom,
    async startOperator(start) {
      const operator = await startOperator({
        kubeConfig: cluster.kubeConfig,
        db: plane.open(),
        logger: silent,
        identity: start.identity,
        leaderElection: start.leaderElection,
        probePort: start.probePort,
        settings: operatorSettings(start.settings),
      });
      operators.push(operator);
      return operator;
    },
    async stopOperator(operator) {
      const index = operators.indexOf(operator);
      if (index >= 0) operators.splice(index, 1);
      await operator.stop();
    },
    stopOperators,
    apply: (slug, spec) =>
      custom.createClusterCustomObject({ ...TENANT_RESOURCE, body: tenantBody(slug, spec) }),
    read: (name) => custom.getClusterCustomObject({ ...TENANT_RESOURCE, name }) as Promise<Tenant>,
    list: async () =>
      ((await custom.listClusterCustomObject({ ...TENANT_RESOURCE })) as { items: Tenant[] }).items,
    waitFor: (name, what, test, ms = 120_000) =>
      waitUntil(
        `tenant ${name}: ${what}`,
        async () => {
          const tenant = await harness.read(name).catch(() => undefined);
          return tenant && test(tenant) ? tenant : undefined;
        },
        ms,
      ),
    waitGone: (name) =>
      waitUntil(`${name} to be gone`, () =>
        harness.read(name).then(
          () => undefined,
          () => true as const,
        ),
      ).then(() => undefined),
    async stop() {
      await stopOperators();
      await cluster.stop();
      await plane.close();
    },
  };
  try {
    await prepareForOperator(cluster, plane, NAMESPACE);
  } catch (err) {
    await harness.stop();
    throw err;
  }
  return harness;
}
