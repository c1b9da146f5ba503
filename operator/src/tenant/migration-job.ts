import { createHash } from 'node:crypto';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { KubeAccess } from '../runtime/http.js';
import { tenantMigrations } from '@vextrus/migrations';
import { ApiError, kubeRequest } from '../runtime/http.js';
import type { Informer } from '../runtime/informer.js';
import { ownerReference, TENANT_LABEL, type Tenant } from './types.js';

export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const MIGRATION_COMPONENT = 'tenant-migration';
const ATTEMPT_ANNOTATION = 'platform.vextrus.dev/attempt';
export const IMAGE_ANNOTATION = 'platform.vextrus.dev/migrations-image';

/** Identifies the tenant migrations this operator release carries: a new set, a new Job. */
export const MIGRATION_SET = createHash('sha256')
  .update(tenantMigrations.map((m) => m.name).join('\n'))
  .digest('hex')
  .slice(0, 10);

/** The last tenant migration of this release. */
export const LATEST_MIGRATION = tenantMigrations.at(-1)?.name ?? '';

export interface MigrationJobSettings {
  namespace: string;
  image: string;
  /** Secret with DATABASE_* keys of a role that may migrate (the owner). */
  databaseSecret: string;
  /** Migration Jobs running at once across all tenants. */
  concurrency: number;
  /** A failed Job is replaced after this delay, doubled per attempt (up to 15 min); 30 s. */
  retryBaseMs?: number;
}

export type MigrationState =
  | { state: 'done'; job: string }
  | { state: 'running'; job: string }
  | { state: 'waiting'; message: string }
  | { state: 'failed'; job: string; message: string; retryInMs: number };

/**
 * What a tenant is migrated to: this release's tenant migration set and the migrations image.
 * Deploying a new image (or a release with new migrations) gives every tenant a new Job once.
 */
export function migrationTarget(image: string): string {
  return createHash('sha256').update(`${MIGRATION_SET}\n${image}`).digest('hex').slice(0, 10);
}

export function migrationJobName(slug: string, image: string): string {
  return `migrate-${slug}-${migrationTarget(image)}`;
}

function finished(job: V1Job, type: 'Complete' | 'Failed') {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

function isMigrationJob(job: V1Job): boolean {
  return job.metadata?.labels?.[COMPONENT_LABEL] === MIGRATION_COMPONENT;
}

function retryDelayMs(attempt: number, baseMs: number): number {
  return Math.min(15 * 60_000, baseMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * The fleet-wide bound on running migration Jobs. The Jobs cache alone cannot enforce it: a Job
 * created a moment ago reaches the cache only with its watch event, and several workers reconcile
 * at once, so a slot is taken (synchronously, before the create request) and counted until the
 * cache shows the Job. Attempts of replaced Jobs are remembered so their backoff keeps growing.
 */
export class MigrationSlots {
  private readonly reserved = new Map<string, number>();
  private readonly attempts = new Map<string, number>();
  /** Tenants that found no free slot, oldest first: a freed slot wakes them in that order. */
  private readonly waiting = new Set<string>();

  constructor(private readonly jobs: Informer<V1Job>) {}

  /** Names of the migration Jobs that run now (or were just created). */
  running(): Set<string> {
    const names = new Set<string>();
    for (const job of this.jobs.list()) {
      const name = job.metadata?.name ?? '';
      if (this.reserved.has(name)) this.reserved.delete(name);
      if (isMigrationJob(job) && !finished(job, 'Complete') && !finished(job, 'Failed')) {
        names.add(name);
      }
    }
    for (const [name, at] of this.reserved) {
      // A reservation whose Job never showed up (say, the create failed on the wire) expires.
      if (Date.now() - at > 120_000) this.reserved.delete(name);
      else names.add(name);
    }
    return names;
  }

  /** Takes a slot for `name` when one is free; returns how many run when none is. */
  take(name: string, limit: number): { taken: true } | { taken: false; running: number } {
    const running = this.running();
    if (running.has(name)) return { taken: true };
    if (running.size >= limit) return { taken: false, running: running.size };
    this.reserved.set(name, Date.now());
    return { taken: true };
  }

  release(name: string): void {
    this.reserved.delete(name);
  }

  /** Records that the tenant waits for a slot (until it takes one). */
  wait(tenant: string): void {
    this.waiting.add(tenant);
  }

  /** The tenant no longer waits (it took a slot, or it is gone). */
  stopWaiting(tenant: string): void {
    this.waiting.delete(tenant);
  }

  /** The tenants that wait longest, as many as there are free slots. */
  nextWaiting(limit: number): string[] {
    const free = limit - this.running().size;
    return free > 0 ? [...this.waiting].slice(0, free) : [];
  }

  rememberAttempt(name: string, attempt: number): void {
    this.attempts.set(name, attempt);
  }

  lastAttempt(name: string): number {
    return this.attempts.get(name) ?? 0;
  }

  forget(name: string): void {
    this.attempts.delete(name);
  }
}

function jobBody(tenant: Tenant, settings: MigrationJobSettings, attempt: number): V1Job {
  const slug = tenant.spec.slug;
  const labels = { [TENANT_LABEL]: slug, [COMPONENT_LABEL]: MIGRATION_COMPONENT };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: migrationJobName(slug, settings.image),
      namespace: settings.namespace,
      labels,
      annotations: {
        [ATTEMPT_ANNOTATION]: String(attempt),
        'platform.vextrus.dev/migration-set': MIGRATION_SET,
        [IMAGE_ANNOTATION]: settings.image,
      },
      ownerReferences: [ownerReference(tenant)],
    },
    spec: {
      backoffLimit: 1,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'migrate',
              image: settings.image,
              args: ['tenant', slug, 'up'],
              envFrom: [{ secretRef: { name: settings.databaseSecret } }],
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
            },
          ],
        },
      },
    },
  };
}

async function logTail(kubeConfig: KubeAccess, namespace: string, job: string): Promise<string> {
  try {
    const selector = new URLSearchParams({ labelSelector: `job-name=${job}` });
    const pods = await kubeRequest<{ items: V1Pod[] }>(
      kubeConfig,
      'GET',
      `/api/v1/namespaces/${namespace}/pods?${selector.toString()}`,
    );
    const pod = pods.items.at(-1);
    if (!pod?.metadata?.name) return '';
    const log = await kubeRequest<unknown>(
      kubeConfig,
      'GET',
      `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}/log` +
        '?container=migrate&tailLines=10',
    );
    return String(log).trim();
  } catch {
    return '';
  }
}

/**
 * Runs the tenant's migrations in a Job of the migrations image, created once per tenant and
 * migration target (migration set and image). At most `concurrency` such Jobs run at once across
 * the fleet; a failed Job stays (its log tail goes into the condition) and is replaced after a
 * growing delay, so a tenant whose cause was fixed recovers by itself, without a storm of Jobs.
 * Once the tenant's Job of the current target completed, its Jobs of earlier targets are deleted.
 */
export async function ensureMigrationJob(
  kubeConfig: KubeAccess,
  jobs: Informer<V1Job>,
  slots: MigrationSlots,
  tenant: Tenant,
  settings: MigrationJobSettings,
): Promise<MigrationState> {
  const name = migrationJobName(tenant.spec.slug, settings.image);
  const path = `/apis/batch/v1/namespaces/${settings.namespace}/jobs`;
  const job = jobs.get(`${settings.namespace}/${name}`);
  if (job && finished(job, 'Complete')) {
    slots.forget(name);
    await deleteSuperseded(kubeConfig, jobs, tenant, name, path);
    return { state: 'done', job: name };
  }
  if (job && !finished(job, 'Failed')) return { state: 'running', job: name };

  const attempt = Math.max(
    Number(job?.metadata?.annotations?.[ATTEMPT_ANNOTATION] ?? 0),
    slots.lastAttempt(name),
  );
  if (job) {
    const failedAt = Date.parse(String(finished(job, 'Failed')?.lastTransitionTime ?? ''));
    const delay = retryDelayMs(attempt, settings.retryBaseMs ?? 30_000);
    const retryInMs = (Number.isNaN(failedAt) ? 0 : failedAt) + delay - Date.now();
    if (retryInMs > 0) {
      const tail = await logTail(kubeConfig, settings.namespace, name);
      const failed = `Job ${name} (image ${settings.image}) failed (attempt ${attempt})`;
      const message = `${failed}; retrying in ${Math.ceil(retryInMs / 1000)} s. ${tail}`;
      return { state: 'failed', job: name, message: message.trim(), retryInMs };
    }
    slots.rememberAttempt(name, attempt);
    await kubeRequest(kubeConfig, 'DELETE', `${path}/${name}`, { propagationPolicy: 'Background' });
    return { state: 'running', job: name };
  }

  const slot = slots.take(name, settings.concurrency);
  const tenantName = tenant.metadata?.name ?? '';
  if (slot.taken) slots.stopWaiting(tenantName);
  else {
    slots.wait(tenantName);
    return {
      state: 'waiting',
      message:
        `Waiting for a migration slot to ${settings.image} ` +
        `(${slot.running} of ${settings.concurrency} running)`,
    };
  }
  try {
    await kubeRequest(kubeConfig, 'POST', path, jobBody(tenant, settings, attempt + 1));
  } catch (err) {
    // Created by a previous reconcile whose event has not reached the cache yet.
    if (!(err instanceof ApiError && err.status === 409)) {
      slots.release(name);
      throw err;
    }
  }
  return { state: 'running', job: name };
}

/** The tenant's finished migration Jobs of earlier targets: they did their work. */
async function deleteSuperseded(
  kubeConfig: KubeAccess,
  jobs: Informer<V1Job>,
  tenant: Tenant,
  current: string,
  path: string,
): Promise<void> {
  for (const old of jobs.list()) {
    const name = old.metadata?.name ?? '';
    if (name === current || !isMigrationJob(old) || old.metadata?.deletionTimestamp) continue;
    if (old.metadata?.labels?.[TENANT_LABEL] !== tenant.spec.slug) continue;
    if (!finished(old, 'Complete') && !finished(old, 'Failed')) continue;
    try {
      await kubeRequest(kubeConfig, 'DELETE', `${path}/${name}`, {
        propagationPolicy: 'Background',
      });
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
  }
}
