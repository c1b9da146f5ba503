import type { NamedMigration } from '../migration.js';
import * as tenantRegistry from './2026120401-tenant-registry.js';
import * as tenantContext from './2026120402-tenant-context.js';
import * as tenantSuspension from './2026120403-tenant-suspension.js';
import * as auditRetention from './2026120406-audit-retention.js';

/** The platform track, in order. A new migration is a new file here and one line below. */
export const platformMigrations: readonly NamedMigration[] = [
  { name: '2026120401-tenant-registry', module: tenantRegistry },
  { name: '2026120402-tenant-context', module: tenantContext },
  { name: '2026120403-tenant-suspension', module: tenantSuspension },
  { name: '2026120406-audit-retention', module: auditRetention },
];
