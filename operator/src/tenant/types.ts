import type { KubernetesObject, V1OwnerReference } from '@kubernetes/client-node';

export const GROUP = 'platform.vextrus.dev';
export const VERSION = 'v1alpha1';
export const TENANTS_PATH = `/apis/${GROUP}/${VERSION}/tenants`;
export const FINALIZER = `${GROUP}/cleanup`;
/** Label on everything the operator creates for a tenant; its value is the tenant's slug. */
export const TENANT_LABEL = `${GROUP}/tenant`;
export const FIELD_MANAGER = 'vextrus-operator';

export interface TenantSpec {
  slug: string;
  displayName: string;
  hosts: string[];
  firstAdministrator: { email: string; name: string };
  firstOrganization: { name: string; code: string };
  auditRetentionDays?: number;
  deletionPolicy?: 'Retain' | 'Delete';
  suspended?: boolean;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface TenantStatus {
  phase?: string;
  observedGeneration?: number;
  schema?: string;
  migrationVersion?: string;
  /** The migrations image whose Job brought the schema to migrationVersion. */
  migrationImage?: string;
  setupTokenSecret?: string;
  urls?: string[];
  conditions?: Condition[];
}

export interface Tenant extends KubernetesObject {
  spec: TenantSpec;
  status?: TenantStatus;
}

export const CONDITIONS = {
  schema: 'SchemaReady',
  migrations: 'MigrationsApplied',
  rls: 'RowLevelSecurityEnforced',
  routes: 'RoutesReady',
  seeded: 'Seeded',
  ready: 'Ready',
  hostConflict: 'HostConflict',
  deletionBlocked: 'DeletionBlocked',
} as const;

/**
 * The owner reference of everything the operator creates for a tenant: the garbage collector
 * removes it with the Tenant, and the Tenant is its controller.
 */
export function ownerReference(tenant: Tenant): V1OwnerReference {
  return {
    apiVersion: tenant.apiVersion ?? `${GROUP}/${VERSION}`,
    kind: 'Tenant',
    name: tenant.metadata?.name ?? '',
    uid: tenant.metadata?.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}
