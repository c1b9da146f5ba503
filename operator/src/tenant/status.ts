import { isDeepStrictEqual } from 'node:util';
import type { KubeAccess } from '../runtime/http.js';
import { kubeRequest } from '../runtime/http.js';
import {
  CONDITIONS,
  TENANTS_PATH,
  type Condition,
  type Tenant,
  type TenantStatus,
} from './types.js';

/**
 * The status a reconcile builds step by step. Conditions keep their lastTransitionTime while their
 * status does not change; every condition carries the generation it was computed for.
 */
export class StatusBuilder {
  readonly status: TenantStatus;
  private readonly generation: number;

  constructor(private readonly tenant: Tenant) {
    this.generation = tenant.metadata?.generation ?? 0;
    this.status = { ...tenant.status, conditions: [...(tenant.status?.conditions ?? [])] };
  }

  set(type: string, ok: boolean | 'Unknown', reason: string, message: string): void {
    const status = ok === 'Unknown' ? 'Unknown' : ok ? 'True' : 'False';
    const conditions = this.status.conditions ?? [];
    const previous = conditions.find((c) => c.type === type);
    const next: Condition = {
      type,
      status,
      reason,
      message,
      observedGeneration: this.generation,
      lastTransitionTime:
        previous && previous.status === status
          ? previous.lastTransitionTime
          : new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
    this.status.conditions = [...conditions.filter((c) => c.type !== type), next];
  }

  remove(type: string): void {
    this.status.conditions = (this.status.conditions ?? []).filter((c) => c.type !== type);
  }

  get(type: string): Condition | undefined {
    return this.status.conditions?.find((c) => c.type === type);
  }

  isTrue(type: string): boolean {
    return this.get(type)?.status === 'True';
  }

  /**
   * Ready follows the required conditions; phase summarises. A suspended tenant is Ready (and in
   * phase Suspended) once its routes are gone, which RoutesReady says with reason Suspended. It
   * is not seeded while suspended, so Seeded is not required of it.
   */
  finish(): TenantStatus {
    const suspended = this.tenant.spec.suspended === true;
    const required: string[] = [CONDITIONS.schema, CONDITIONS.migrations, CONDITIONS.rls];
    if (!suspended) required.push(CONDITIONS.seeded);
    const routesDone = suspended
      ? this.get(CONDITIONS.routes)?.reason === 'Suspended'
      : this.isTrue(CONDITIONS.routes);
    const failing = [
      ...required.filter((type) => !this.isTrue(type)),
      ...(routesDone ? [] : [CONDITIONS.routes]),
    ];
    const conflict = this.isTrue(CONDITIONS.hostConflict);
    if (failing.length === 0 && !conflict) {
      this.set(
        CONDITIONS.ready,
        true,
        suspended ? 'Suspended' : 'Provisioned',
        suspended ? 'The tenant is provisioned and suspended' : 'The tenant is ready',
      );
    } else {
      const why = conflict ? [CONDITIONS.hostConflict] : failing;
      this.set(CONDITIONS.ready, false, 'NotReady', `Waiting for: ${why.join(', ')}`);
    }
    this.status.phase = this.phase();
    this.status.observedGeneration = this.generation;
    return this.status;
  }

  /** The phase the conditions add up to; Ready must be set first. */
  private phase(): string {
    const ready = this.isTrue(CONDITIONS.ready);
    if (ready) return this.tenant.spec.suspended === true ? 'Suspended' : 'Ready';
    const migration = this.get(CONDITIONS.migrations);
    const failed =
      this.get(CONDITIONS.schema)?.status === 'False' ||
      this.get(CONDITIONS.seeded)?.status === 'False' ||
      this.isTrue(CONDITIONS.hostConflict) ||
      migration?.reason === 'MigrationJobFailed';
    if (failed) return 'Degraded';
    // A tenant that was migrated before and now waits for, or runs, its next migration Job.
    const migrating =
      Boolean(this.status.migrationImage) &&
      migration?.status === 'False' &&
      ['WaitingForMigrationSlot', 'MigrationRunning'].includes(migration.reason);
    return migrating ? 'Migrating' : 'Provisioning';
  }
}

/** Writes the status subresource (a merge patch of the whole status) unless it is unchanged. */
export async function writeStatus(
  kubeConfig: KubeAccess,
  tenant: Tenant,
  status: TenantStatus,
): Promise<void> {
  // The API server returns the status with its keys sorted, not as they were written: compare
  // values, not texts, or every resync writes an unchanged status (and wakes its watchers).
  const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value ?? {}));
  if (isDeepStrictEqual(plain(tenant.status), plain(status))) return;
  await kubeRequest(
    kubeConfig,
    'PATCH',
    `${TENANTS_PATH}/${tenant.metadata?.name}/status`,
    { status },
    'application/merge-patch+json',
  );
}
