import * as migrations from '@vextrus/migrations';
import type { Database } from '@vextrus/migrations';
import type { Logger } from 'pino';
import type { Tenant } from './types.js';

type SeedOrganization = (
  db: Database,
  slug: string,
  organization: { name: string; code: string },
) => Promise<unknown>;
type SetRetention = (db: Database, slug: string, days: number) => Promise<unknown>;

/**
 * The tenant's first organization and its audit retention window, through the provisioning
 * library. NOTE: both functions arrive with the organization and audit work; until the library
 * exports them, these steps log that they were skipped, and the Tenant still becomes Ready.
 */
export async function optionalSeeds(db: Database, tenant: Tenant, log: Logger): Promise<void> {
  const library = migrations as unknown as Record<string, unknown>;
  const seedOrganization = library.seedOrganization as SeedOrganization | undefined;
  const setRetention = library.setAuditRetention as SetRetention | undefined;
  if (seedOrganization) await seedOrganization(db, tenant.spec.slug, tenant.spec.firstOrganization);
  else log.debug('first organization not seeded: the library has no seedOrganization yet');
  if (setRetention) await setRetention(db, tenant.spec.slug, tenant.spec.auditRetentionDays ?? 365);
  else log.debug('audit retention not set: the library has no setAuditRetention yet');
}
