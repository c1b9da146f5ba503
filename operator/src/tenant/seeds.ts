import { seedOrganization, setAuditRetention, type Database } from '@vextrus/migrations';
import type { Tenant } from './types.js';

/**
 * The tenant's first organization (once: the library writes nothing when the tenant has one)
 * and its audit retention window, from the spec.
 */
export async function tenantSeeds(db: Database, tenant: Tenant): Promise<void> {
  await seedOrganization(db, tenant.spec.slug, tenant.spec.firstOrganization);
  await setAuditRetention(db, tenant.spec.slug, tenant.spec.auditRetentionDays ?? 365);
}
