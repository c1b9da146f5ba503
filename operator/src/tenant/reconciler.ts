import type { KubernetesObject, V1Job, V1Secret } from '@kubernetes/client-node';
import type { KubeAccess } from '../runtime/http.js';
import {
  deprovision,
  provision,
  seedAdmin,
  setSuspended,
  tenantSchema,
  tenantStatus,
  verify,
  type Database,
  type DriftReport,
} from '@vextrus/migrations';
import type { Logger } from 'pino';
import { resyncDelay, type Result } from '../runtime/controller.js';
import { errorMessage, StepError } from '../runtime/errors.js';
import type { EventRecorder } from '../runtime/events.js';
import { ApiError, kubeRequest } from '../runtime/http.js';
import type { Informer } from '../runtime/informer.js';
import { tenantSeeds } from './seeds.js';
import { slugProblem, specProblems } from './spec.js';
import {
  ensureMigrationJob,
  type MigrationJobSettings,
  type MigrationSlots,
} from './migration-job.js';
import {
  applyRoutes,
  middlewareName,
  removeRoutes,
  routeName,
  routesExist,
  type RouteTargets,
} from './routes.js';
import { StatusBuilder, writeStatus } from './status.js';
import {
  CONDITIONS,
  FINALIZER,
  ownerReference,
  TENANT_LABEL,
  TENANTS_PATH,
  type Tenant,
} from './types.js';

export interface OperatorSettings {
  namespace: string;
  migrations: MigrationJobSettings;
  routes: RouteTargets;
  /**
   * Every tenant is reconciled again within this period (each requeue is spread over its last
   * fifth): drift in PostgreSQL, which nothing watches, is found and repaired within it.
   */
  resyncMs: number;
  /** Scheme of the URLs in status.urls. */
  urlScheme: 'http' | 'https';
}

export interface OperatorContext {
  kubeConfig: KubeAccess;
  db: Database;
  logger: Logger;
  events: EventRecorder;
  tenants: Informer<Tenant>;
  jobs: Informer<V1Job>;
  /** The fleet-wide bound on running migration Jobs, shared by every worker. */
  slots: MigrationSlots;
  /** Caches of what the operator creates per tenant (name and labels only). */
  owned: {
    secrets: Informer<KubernetesObject>;
    middlewares: Informer<KubernetesObject>;
    ingressroutes: Informer<KubernetesObject>;
  };
  settings: OperatorSettings;
}

/** What a step returns when it cannot finish now: the reconcile stops there and comes back. */
interface Wait {
  requeueAfterMs: number;
}

export function setupSecretName(slug: string): string {
  return `tenant-${slug}-setup-token`;
}

/**
 * Brings one Tenant to what its spec asks for, as a flat list of steps. Each step records its
 * condition. A step that must wait returns a Wait: the reconcile writes the status and comes
 * back after it. A step that fails throws a StepError naming it, which is retried with backoff.
 * The status is written in every case.
 */
export async function reconcileTenant(ctx: OperatorContext, name: string): Promise<Result> {
  const tenant = ctx.tenants.get(name);
  if (!tenant || tenant.metadata?.deletionTimestamp) ctx.slots.stopWaiting(name);
  if (!tenant) return {};
  const log = ctx.logger.child({ tenant: name, generation: tenant.metadata?.generation });
  if (tenant.metadata?.deletionTimestamp) return finalizeTenant(ctx, tenant, log);
  const status = new StatusBuilder(tenant);
  const comeBack = async (wait: Wait): Promise<Result> => {
    await writeStatus(ctx.kubeConfig, tenant, status.finish());
    return { requeueAfterMs: wait.requeueAfterMs };
  };

  // Checked before anything is written, the finalizer included: a spec that provisioning would
  // refuse halfway is reported once and waits for an edit (which brings the tenant back).
  const problems = specProblems(tenant.spec, tenant.status?.schema !== undefined);
  if (problems.length > 0) return refuseSpec(ctx, tenant, status, problems);

  try {
    if (!(await step('finalizer', ensureFinalizer(ctx, tenant)))) return {};

    const hosts = claimHosts(ctx, tenant, status);

    const found = await inspectDatabase(ctx, tenant, log);

    await step('schema', ensureSchema(ctx, tenant, status, found));

    const migrating = await step('migrations', ensureMigrations(ctx, tenant, status));
    if (migrating) return await comeBack(migrating);

    const drifting = await step('rls', ensureRowLevelSecurity(ctx, tenant, status, found));
    if (drifting) return await comeBack(drifting);

    // Seeding needs an active tenant; a suspended one was seeded before it was suspended.
    if (!tenant.spec.suspended) await step('seeding', ensureSeeded(ctx, tenant, status, found));

    await step('routes', ensureRoutes(ctx, tenant, status, hosts));
  } catch (err) {
    await writeStatus(ctx.kubeConfig, tenant, status.finish()).catch((writeErr: unknown) => {
      log.warn({ err: writeErr }, 'cannot write status');
    });
    throw err;
  }

  await writeStatus(ctx.kubeConfig, tenant, status.finish());
  return { requeueAfterMs: resyncDelay(ctx.settings.resyncMs) };
}

/** The outcome of one step of the reconcile; its failure names the step. */
async function step<T>(name: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw err instanceof StepError ? err : new StepError(name, err);
  }
}

/** Reports a spec that cannot be provisioned: Ready False with reason InvalidSpec, and an Event. */
async function refuseSpec(
  ctx: OperatorContext,
  tenant: Tenant,
  status: StatusBuilder,
  problems: string[],
): Promise<Result> {
  const message = `The spec cannot be provisioned: ${problems.join('; ')}`;
  const previous = status.get(CONDITIONS.ready);
  if (previous?.reason !== 'InvalidSpec' || previous.message !== message) {
    await ctx.events.record(tenant, 'Warning', 'InvalidSpec', message);
  }
  status.set(CONDITIONS.ready, false, 'InvalidSpec', message);
  status.status.phase = 'Degraded';
  status.status.observedGeneration = tenant.metadata?.generation ?? 0;
  await writeStatus(ctx.kubeConfig, tenant, status.status);
  return {};
}

/**
 * What PostgreSQL holds of the tenant, read in one statement: what a resync of a Ready tenant
 * costs in the database when nothing drifted. undefined when it cannot be read (the database is
 * away): the steps below then try, fail and report it as before.
 */
async function inspectDatabase(
  ctx: OperatorContext,
  tenant: Tenant,
  log: Logger,
): Promise<DriftReport | undefined> {
  try {
    return await verify(ctx.db, tenant.spec.slug);
  } catch (err) {
    log.debug({ err }, 'cannot read the tenant state');
    return undefined;
  }
}

/**
 * Whether the database already is what provisioning would make of it for this spec: schema,
 * role, privileges, forced RLS and policies, every migration recorded, and the registry status
 * (active, or suspended) the spec asks for. Provisioning is then skipped: it would change
 * nothing, and it takes a lock and some thirty statements.
 */
function inPlace(tenant: Tenant, found: DriftReport | undefined): found is DriftReport {
  const wanted = tenant.spec.suspended === true ? 'suspended' : 'active';
  return found !== undefined && found.clean && found.status === wanted;
}

async function patchFinalizers(ctx: OperatorContext, tenant: Tenant, finalizers: string[]) {
  await kubeRequest(
    ctx.kubeConfig,
    'PATCH',
    `${TENANTS_PATH}/${tenant.metadata?.name}`,
    { metadata: { finalizers, resourceVersion: tenant.metadata?.resourceVersion } },
    'application/merge-patch+json',
  );
}

/** Returns false when it just added the finalizer (the update event brings the tenant back). */
async function ensureFinalizer(ctx: OperatorContext, tenant: Tenant): Promise<boolean> {
  const finalizers = tenant.metadata?.finalizers ?? [];
  if (finalizers.includes(FINALIZER)) return true;
  await patchFinalizers(ctx, tenant, [...finalizers, FINALIZER]);
  return false;
}

function claimedEarlier(other: Tenant, tenant: Tenant): boolean {
  const a = Date.parse(other.metadata?.creationTimestamp?.toString() ?? '');
  const b = Date.parse(tenant.metadata?.creationTimestamp?.toString() ?? '');
  if (a !== b) return a < b;
  return (other.metadata?.name ?? '') < (tenant.metadata?.name ?? '');
}

/** The tenant's hosts, or undefined when another tenant claimed one of them first. */
function claimHosts(ctx: OperatorContext, tenant: Tenant, status: StatusBuilder) {
  const conflicts: string[] = [];
  // Every tenant is looked at on every reconcile: the shared hosts first, which is cheap, and
  // the creation times (two Date.parse) only for the rare tenant that shares one. With 1,000
  // tenants that took the loop from 0.36 ms to 0.04 ms per reconcile.
  for (const other of ctx.tenants.list()) {
    if (other.metadata?.name === tenant.metadata?.name || other.metadata?.deletionTimestamp) {
      continue;
    }
    const shared = tenant.spec.hosts.filter((host) => other.spec.hosts.includes(host));
    if (shared.length === 0 || !claimedEarlier(other, tenant)) continue;
    for (const host of shared) conflicts.push(`${host} (tenant ${other.metadata?.name})`);
  }
  if (conflicts.length === 0) {
    status.remove(CONDITIONS.hostConflict);
    return tenant.spec.hosts;
  }
  const message = `Hosts already claimed by another tenant: ${conflicts.join(', ')}`;
  if (!status.isTrue(CONDITIONS.hostConflict)) {
    void ctx.events.record(tenant, 'Warning', 'HostConflict', message);
  }
  status.set(CONDITIONS.hostConflict, true, 'HostClaimed', message);
  return undefined;
}

async function ensureSchema(
  ctx: OperatorContext,
  tenant: Tenant,
  status: StatusBuilder,
  found: DriftReport | undefined,
) {
  const slug = tenant.spec.slug;
  try {
    if (!inPlace(tenant, found)) {
      await provision(ctx.db, slug, { displayName: tenant.spec.displayName, migrations: false });
    }
  } catch (err) {
    const message = `Cannot provision schema ${tenantSchema(slug)}: ${errorMessage(err)}`;
    status.set(CONDITIONS.schema, false, 'ProvisioningFailed', message);
    await ctx.events.record(tenant, 'Warning', 'ProvisioningFailed', message);
    throw err;
  }
  status.status.schema = tenantSchema(slug);
  status.set(
    CONDITIONS.schema,
    true,
    'SchemaProvisioned',
    `Schema ${tenantSchema(slug)} and its role exist`,
  );
}

async function ensureMigrations(
  ctx: OperatorContext,
  tenant: Tenant,
  status: StatusBuilder,
): Promise<Wait | undefined> {
  const { image } = ctx.settings.migrations;
  const outcome = await ensureMigrationJob(
    ctx.kubeConfig,
    ctx.jobs,
    ctx.slots,
    tenant,
    ctx.settings.migrations,
  );
  // An upgrade (the tenant was migrated before, to another image) is reported as such.
  const upgrading = Boolean(status.status.migrationImage && status.status.migrationImage !== image);
  switch (outcome.state) {
    case 'done': {
      if (status.status.migrationImage !== image || !status.status.migrationVersion) {
        // What the Job applied, read from the tenant's own migration table.
        const applied = await tenantStatus(ctx.db, tenant.spec.slug);
        status.status.migrationVersion = applied.executed.at(-1) ?? '';
        status.status.migrationImage = image;
        if (upgrading) {
          await ctx.events.record(
            tenant,
            'Normal',
            'MigrationsUpgraded',
            `Migrated to ${status.status.migrationVersion} with ${image}`,
          );
        }
      }
      status.set(
        CONDITIONS.migrations,
        true,
        'MigrationsApplied',
        `Applied up to ${status.status.migrationVersion} (Job ${outcome.job}, image ${image})`,
      );
      return undefined;
    }
    case 'running':
      status.set(
        CONDITIONS.migrations,
        false,
        'MigrationRunning',
        `Job ${outcome.job} (image ${image}) is running`,
      );
      return { requeueAfterMs: resyncDelay(ctx.settings.resyncMs) };
    case 'waiting':
      status.set(CONDITIONS.migrations, false, 'WaitingForMigrationSlot', outcome.message);
      // A finished Job wakes the tenants waiting longest; this poll is the fallback.
      return { requeueAfterMs: 15_000 };
    case 'failed':
      if (status.get(CONDITIONS.migrations)?.reason !== 'MigrationJobFailed') {
        await ctx.events.record(tenant, 'Warning', 'MigrationJobFailed', outcome.message);
      }
      status.set(CONDITIONS.migrations, false, 'MigrationJobFailed', outcome.message);
      return { requeueAfterMs: outcome.retryInMs };
  }
}

/**
 * Provisions again now that the migrations ran: every table gets forced RLS, the policy and its
 * grants, and the tenant is activated (unless suspended). Drift found at the start of the
 * reconcile is repaired and reported as an Event. A tenant found in place needs none of it.
 */
async function ensureRowLevelSecurity(
  ctx: OperatorContext,
  tenant: Tenant,
  status: StatusBuilder,
  found: DriftReport | undefined,
): Promise<Wait | undefined> {
  const slug = tenant.spec.slug;
  const enforced = () =>
    status.set(
      CONDITIONS.rls,
      true,
      'Enforced',
      'Every table has forced RLS and the isolation policy',
    );
  if (inPlace(tenant, found)) {
    enforced();
    return undefined;
  }
  const wasEnforced = status.isTrue(CONDITIONS.rls);
  const before = found ?? (await verify(ctx.db, slug));
  await provision(ctx.db, slug, {
    displayName: tenant.spec.displayName,
    activate: tenant.spec.suspended !== true,
  });
  await setSuspended(ctx.db, slug, tenant.spec.suspended === true);
  const after = await verify(ctx.db, slug);
  // Pending migrations are the Job's work (a new image), not drift.
  const drift = before.issues.filter((i) => i.code !== 'MIGRATIONS_PENDING');
  if (wasEnforced && drift.length > 0) {
    const repaired = drift.map((i) => `${i.code} ${i.object}`).join('; ');
    await ctx.events.record(tenant, 'Warning', 'DriftRepaired', `Repaired: ${repaired}`);
  }
  if (!after.clean) {
    const left = after.issues.map((i) => `${i.code} ${i.object}: ${i.detail}`).join('; ');
    status.set(CONDITIONS.rls, false, 'DriftNotRepaired', left);
    return { requeueAfterMs: resyncDelay(ctx.settings.resyncMs) };
  }
  enforced();
  return undefined;
}

/**
 * The first administrator (with its setup token in a Secret), the first organization and the
 * audit retention window: Seeded, a condition Ready requires. A failure sets it False with an
 * Event, and is retried with backoff like any other error.
 */
async function ensureSeeded(
  ctx: OperatorContext,
  tenant: Tenant,
  status: StatusBuilder,
  found: DriftReport | undefined,
) {
  try {
    await ensureFirstAdministrator(ctx, tenant, status);
    await ensureSeeds(ctx, tenant, status, found);
  } catch (err) {
    const message = `Cannot seed tenant ${tenant.spec.slug}: ${errorMessage(err)}`;
    const previous = status.get(CONDITIONS.seeded);
    if (previous?.reason !== 'SeedingFailed' || previous.message !== message) {
      await ctx.events.record(tenant, 'Warning', 'SeedingFailed', message);
    }
    status.set(CONDITIONS.seeded, false, 'SeedingFailed', message);
    throw err;
  }
  status.set(
    CONDITIONS.seeded,
    true,
    'Seeded',
    'The first administrator and organization exist, and the audit retention window is set',
  );
}

/**
 * The first organization and the audit retention window. Skipped on the resync of a tenant that
 * was seeded for this generation and whose registry holds the retention window of its spec, so
 * that a resync writes nothing.
 */
async function ensureSeeds(
  ctx: OperatorContext,
  tenant: Tenant,
  status: StatusBuilder,
  found: DriftReport | undefined,
) {
  const seeded = status.get(CONDITIONS.seeded);
  const settled =
    inPlace(tenant, found) &&
    seeded?.status === 'True' &&
    seeded.observedGeneration === tenant.metadata?.generation &&
    found.auditRetentionDays === (tenant.spec.auditRetentionDays ?? 365);
  if (!settled) await tenantSeeds(ctx.db, tenant);
}

/**
 * Whether the Secret exists. The cache answers "present" without a request on every resync; only
 * "absent" is confirmed by the API server, since the cache may lag behind a Secret created a
 * moment ago.
 */
async function secretExists(ctx: OperatorContext, name: string): Promise<boolean> {
  if (ctx.owned.secrets.get(`${ctx.settings.namespace}/${name}`)) return true;
  return (await readSecret(ctx, name)) !== undefined;
}

/**
 * The Secret, or undefined when the API server says it does not exist. IMPORTANT: any other
 * failure must not read as "absent": seeding again revokes the token the Secret already holds.
 */
async function readSecret(ctx: OperatorContext, name: string): Promise<V1Secret | undefined> {
  try {
    return await kubeRequest<V1Secret>(
      ctx.kubeConfig,
      'GET',
      `/api/v1/namespaces/${ctx.settings.namespace}/secrets/${name}`,
    );
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw new Error(`cannot read Secret ${name}`, { cause: err });
  }
}

/** The first administrator and its one-time setup token, delivered in a Secret. */
async function ensureFirstAdministrator(
  ctx: OperatorContext,
  tenant: Tenant,
  status: StatusBuilder,
) {
  const slug = tenant.spec.slug;
  const name = setupSecretName(slug);
  if (await secretExists(ctx, name)) {
    status.status.setupTokenSecret = name;
    return;
  }
  const seeded = await seedAdmin(ctx.db, slug, tenant.spec.firstAdministrator);
  if (!seeded.setupToken) return;
  const secret: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace: ctx.settings.namespace,
      labels: { [TENANT_LABEL]: slug },
      ownerReferences: [ownerReference(tenant)],
    },
    type: 'Opaque',
    stringData: {
      email: seeded.email ?? tenant.spec.firstAdministrator.email,
      token: seeded.setupToken,
      expiresAt: seeded.expiresAt ?? '',
    },
  };
  const secrets = `/api/v1/namespaces/${ctx.settings.namespace}/secrets`;
  try {
    await kubeRequest(ctx.kubeConfig, 'POST', secrets, secret);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 409)) throw err;
    // Written by an earlier reconcile that was cut short: seeding just revoked its token, so the
    // Secret is replaced (delete and create: the operator's Role has no update on Secrets).
    await kubeRequest(ctx.kubeConfig, 'DELETE', `${secrets}/${name}`);
    await kubeRequest(ctx.kubeConfig, 'POST', secrets, secret);
  }
  status.status.setupTokenSecret = name;
  await ctx.events.record(tenant, 'Normal', 'SetupTokenIssued', `Setup token in Secret ${name}`);
}

async function ensureRoutes(
  ctx: OperatorContext,
  tenant: Tenant,
  status: StatusBuilder,
  hosts: string[] | undefined,
) {
  const { slug } = tenant.spec;
  const { namespace, urlScheme } = ctx.settings;
  if (!hosts || tenant.spec.suspended) {
    await removeRoutes(ctx.kubeConfig, slug, namespace);
    status.status.urls = [];
    const reason = hosts ? 'Suspended' : 'HostConflict';
    status.set(
      CONDITIONS.routes,
      false,
      reason,
      hosts ? 'The tenant is suspended' : 'No route while a host is claimed by another tenant',
    );
    return;
  }
  // Both objects in the cache: no request; a miss is confirmed by the API server.
  const middleware = ctx.owned.middlewares.get(`${namespace}/${middlewareName(slug)}`);
  const route = ctx.owned.ingressroutes.get(`${namespace}/${routeName(slug)}`);
  const existed =
    status.isTrue(CONDITIONS.routes) &&
    ((middleware !== undefined && route !== undefined) ||
      (await routesExist(ctx.kubeConfig, slug, namespace)));
  try {
    // Only what the cache does not show as desired is applied: a resync that finds both
    // objects as they should be makes no request (an edit or a deletion is watched, and brings
    // the tenant back at once).
    await applyRoutes(ctx.kubeConfig, tenant, hosts, ctx.settings.routes, { middleware, route });
  } catch (err) {
    const missing = err instanceof ApiError && err.status === 404;
    const reason = missing ? 'GatewayNotInstalled' : 'RouteApplyFailed';
    status.set(
      CONDITIONS.routes,
      false,
      reason,
      `Cannot apply the tenant's routes: ${errorMessage(err)}`,
    );
    throw err;
  }
  if (status.isTrue(CONDITIONS.routes) && !existed) {
    await ctx.events.record(
      tenant,
      'Warning',
      'DriftRepaired',
      'Recreated the tenant route or middleware',
    );
  }
  status.status.urls = hosts.map((host) => `${urlScheme}://${host}`);
  status.set(CONDITIONS.routes, true, 'RoutesApplied', `Routing ${hosts.join(', ')}`);
}

/**
 * Deletion: routes go first; then Retain revokes access and keeps the data, Delete drops what
 * provisioning created. The finalizer goes only when cleanup succeeded; otherwise
 * DeletionBlocked says why and the cleanup is retried with backoff.
 */
async function finalizeTenant(ctx: OperatorContext, tenant: Tenant, log: Logger): Promise<Result> {
  const finalizers = tenant.metadata?.finalizers ?? [];
  if (!finalizers.includes(FINALIZER)) return {};
  const { slug } = tenant.spec;
  const policy = tenant.spec.deletionPolicy ?? 'Retain';
  const status = new StatusBuilder(tenant);
  try {
    await removeRoutes(ctx.kubeConfig, slug, ctx.settings.namespace);
    // Provisioning refuses an invalid slug before it writes anything: nothing to clean up.
    if (!slugProblem(slug)) {
      await deprovision(ctx.db, slug, policy === 'Delete' ? 'delete' : 'retain');
    }
    if (policy === 'Delete') {
      await kubeRequest(
        ctx.kubeConfig,
        'DELETE',
        `/api/v1/namespaces/${ctx.settings.namespace}/secrets/${setupSecretName(slug)}`,
      ).catch((err: unknown) => {
        // The garbage collector removes it anyway once the Tenant is gone (owner reference).
        if (!(err instanceof ApiError && err.status === 404)) {
          log.warn({ err }, 'cannot delete the setup Secret; the garbage collector will');
        }
      });
    }
  } catch (err) {
    const message = `Cleanup (${policy}) failed: ${errorMessage(err)}`;
    log.warn({ err }, 'tenant cleanup failed');
    status.set(CONDITIONS.deletionBlocked, true, 'CleanupFailed', message);
    status.finish();
    status.status.phase = 'DeletionBlocked';
    await writeStatus(ctx.kubeConfig, tenant, status.status).catch((statusErr: unknown) => {
      log.warn({ err: statusErr }, 'cannot write the DeletionBlocked status; the Event says it');
    });
    await ctx.events.record(tenant, 'Warning', 'DeletionBlocked', message, 'Delete');
    throw err;
  }
  await patchFinalizers(
    ctx,
    tenant,
    finalizers.filter((f) => f !== FINALIZER),
  ).catch((err: unknown) => {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  });
  log.info({ policy }, 'tenant finalized');
  return {};
}
