import type { NamedMigration } from '../migration.js';
import * as organizations from './2026120401-organizations.js';
import * as auditEvents from './2026120406-audit-events.js';
import * as users from './2026120410-users.js';
import * as credentials from './2026120411-credentials.js';
import * as refreshTokens from './2026120412-refresh-tokens.js';
import * as oneTimeTokens from './2026120413-one-time-tokens.js';
import * as loginThrottle from './2026120414-login-throttle.js';
import * as branches from './2026120420-branches.js';
import * as divisions from './2026120421-divisions.js';
import * as projects from './2026120422-projects.js';
import * as sites from './2026120423-sites.js';
import * as idempotencyKeys from './2026120424-idempotency-keys.js';
import * as auditFastAppend from './2026120425-audit-fast-append.js';
import * as auditSealing from './2026120426-audit-sealing.js';

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
  { name: '2026120420-branches', module: branches },
  { name: '2026120421-divisions', module: divisions },
  { name: '2026120422-projects', module: projects },
  { name: '2026120423-sites', module: sites },
  { name: '2026120424-idempotency-keys', module: idempotencyKeys },
  { name: '2026120425-audit-fast-append', module: auditFastAppend },
  { name: '2026120426-audit-sealing', module: auditSealing },
];
