import type { NamedMigration } from '../migration.js';
import * as organizations from './2026120401-organizations.js';

/**
 * The tenant track, in order; each runs inside one tenant's schema. To add a tenant table,
 * write `<timestamp>-<table>.ts` beside this file following ./conventions.ts and list it below.
 */
export const tenantMigrations: readonly NamedMigration[] = [
  { name: '2026120401-organizations', module: organizations },
];
