import type { NamedMigration } from '../migration.js';
import * as organizations from './2026120401-organizations.js';
import * as auditEvents from './2026120406-audit-events.js';
import * as users from './2026120410-users.js';
import * as credentials from './2026120411-credentials.js';
import * as refreshTokens from './2026120412-refresh-tokens.js';
import * as oneTimeTokens from './2026120413-one-time-tokens.js';
import * as loginThrottle from './2026120414-login-throttle.js';

/**
 * The tenant track, in order; each runs inside one tenant's schema. To add a tenant table,
 * write `<timestamp>-<table>.ts` beside this file following ./conventions.ts and list it below.
 */
export const tenantMigrations: readonly NamedMigration[] = [
  { name: '2026120401-organizations', module: organizations },
  { name: '2026120406-audit-events', module: auditEvents },
  { name: '2026120410-users', module: users },
  { name: '2026120411-credentials', module: credentials },
  { name: '2026120412-refresh-tokens', module: refreshTokens },
  { name: '2026120413-one-time-tokens', module: oneTimeTokens },
  { name: '2026120414-login-throttle', module: loginThrottle },
];
