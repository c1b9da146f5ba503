import { createHash } from 'node:crypto';
import type { CoreV1Api, KubeConfig, V1Job } from '@kubernetes/client-node';
import { tenantMigrations } from '@vextrus/migrations';
import { ApiError, kubeRequest } from '../runtime/http.js';
import type { Informer } from '../runtime/informer.js';
import { TENANT_LABEL, type Tenant } from './types.js';

export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const MIGRATION_COMPONENT = 'tenant-migration';
const ATTEMPT_ANNOTATION = 'platform.vextrus.dev/attempt';

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
}

export type MigrationState =
  | { state: 'done' }
  | { state: 'running'; job: string }
  | { state: 'waiting'; message: string }
  | { state: 'failed'; job: string; message: string; retryInMs: number };

export function migrationJobName(slug: string): string {
  return `migrate-${slug}-${MIGRATION_SET}`;
}

function finished(job: V1Job, type: 'Complete' | 'Failed') {
  return job.status?.conditions?.find((c) => c.type === type && c.status === 'True');
}

function retryDelayMs(attempt: number): number {
  return Math.min(15 * 60_000, 30_000 * 2 ** Math.max(0, attempt - 1));
}

function jobBody(tenant: Tenant, settings: MigrationJobSettings, attempt: number): V1Job {
  const slug = tenant.spec.slug;
  const labels = { [TENANT_LABEL]: slug, [COMPONENT_LABEL]: MIGRATION_COMPONENT };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: migrationJobName(slug),
      namespace: settings.namespace,
      labels,
      annotations: {
        [ATTEMPT_ANNOTATION]: String(attempt),
        'platform.vextrus.dev/migration-set': MIGRATION_SET,
      },
      ownerReferences: [
        {
          apiVersion: tenant.apiVersion ?? 'platform.vextrus.dev/v1alpha1',
          kind: 'Tenant',
          name: tenant.metadata?.name ?? '',
          uid: tenant.metadata?.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
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

async function logTail(core: CoreV1Api, namespace: string, job: string): Promise<string> {
  try {
    const pods = await core.listNamespacedPod({ namespace, labelSelector: `job-name=${job}` });
    const pod = pods.items.at(-1);
    if (!pod?.metadata?.name) return '';
    const log = await core.readNamespacedPodLog({
      name: pod.metadata.name,
      namespace,
      container: 'migrate',
      tailLines: 10,
    });
    return String(log).trim();
  } catch {
    return '';
  }
}

/**
 * Runs the tenant's migrations of this release in a Job of the migrations image, created once
 * per tenant and migration set. At most `concurrency` such Jobs run at once; a failed Job stays
 * (its log tail goes into the condition) and is replaced after a growing delay, so a tenant whose
 * cause was fixed recovers by itself, without a storm of Jobs.
 */
export async function ensureMigrationJob(
  kubeConfig: KubeConfig,
  core: CoreV1Api,
  jobs: Informer<V1Job>,
  tenant: Tenant,
  settings: MigrationJobSettings,
): Promise<MigrationState> {
  const name = migrationJobName(tenant.spec.slug);
  const path = `/apis/batch/v1/namespaces/${settings.namespace}/jobs`;
  const job = jobs.get(`${settings.namespace}/${name}`);
  if (job && finished(job, 'Complete')) return { state: 'done' };
  if (job && !finished(job, 'Failed')) return { state: 'running', job: name };

  const attempt = Number(job?.metadata?.annotations?.[ATTEMPT_ANNOTATION] ?? 0);
  if (job) {
    const failedAt = Date.parse(String(finished(job, 'Failed')?.lastTransitionTime ?? ''));
    const retryInMs = (Number.isNaN(failedAt) ? 0 : failedAt) + retryDelayMs(attempt) - Date.now();
    if (retryInMs > 0) {
      const tail = await logTail(core, settings.namespace, name);
      const message = `Job ${name} failed (attempt ${attempt}); retrying in ${Math.ceil(retryInMs / 1000)} s. ${tail}`;
      return { state: 'failed', job: name, message: message.trim(), retryInMs };
    }
    await kubeRequest(kubeConfig, 'DELETE', `${path}/${name}`, { propagationPolicy: 'Background' });
    return { state: 'running', job: name };
  }

  const running = jobs
    .list()
    .filter(
      (j) =>
        j.metadata?.labels?.[COMPONENT_LABEL] === MIGRATION_COMPONENT &&
        !finished(j, 'Complete') &&
        !finished(j, 'Failed'),
    ).length;
  if (running >= settings.concurrency) {
    return {
      state: 'waiting',
      message: `Waiting for a migration slot (${running} of ${settings.concurrency} running)`,
    };
  }
  try {
    await kubeRequest(kubeConfig, 'POST', path, jobBody(tenant, settings, attempt + 1));
  } catch (err) {
    // Created by a previous reconcile whose event has not reached the cache yet.
    if (!(err instanceof ApiError && err.status === 409)) throw err;
  }
  return { state: 'running', job: name };
}
