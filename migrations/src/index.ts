/**
 * @vextrus/migrations: platform and tenant migrations, database roles and tenant provisioning.
 * The CLI (cli.ts) and the operator both call what is exported here.
 */
export { databaseUrl } from './connection.js';
export { openDatabase, type Database, type OpenDatabaseOptions } from './database.js';
export { MigrationError, MigrationErrorCode } from './errors.js';
export { SLUG_MAX_LENGTH, tenantSchema, validateSlug } from './identifiers.js';
export { LOCK_CLASS, withAdvisoryLock, type LockName } from './lock.js';
export type { MigrationContext, MigrationModule, NamedMigration } from './migration.js';
export { PLATFORM_SCHEMA, migratePlatform, platformStatus } from './platform.js';
export { findTenant, listTenants, type TenantRecord, type TenantStatus } from './registry.js';
export {
  DEFAULT_ROLE_NAMES,
  ensureRoles,
  resolveRoleNames,
  tenantRoleName,
  type RoleNames,
  type RolePasswords,
} from './roles.js';
export type { Direction, RunOptions, TrackStatus } from './runner.js';
export {
  AUDIT_TABLES,
  isolationExpression,
  ISOLATION_POLICY,
  MIGRATION_TABLE,
  TENANT_ID_COLUMN,
} from './tenant/conventions.js';
export {
  administratorProblem,
  seedAdmin,
  type SeedAdminOptions,
  type SeedAdminResult,
} from './seed/admin.js';
export * from './seed/organization.js';
export type { DriftIssue, TenantNames } from './tenant-state.js';
export {
  PROVISION_STEPS,
  deprovision,
  migrateAllTenants,
  migrateTenant,
  provision,
  repair,
  setSuspended,
  tenantStatus,
  type DeprovisionMode,
  type MigrateAllResult,
  type ProvisionOptions,
  type ProvisionResult,
  type ProvisionStep,
} from './tenants.js';
export { tenantNames, verify, type DriftReport } from './tenant-verify.js';
export { tenantMigrations } from './tenant/index.js';
export * from './audit/index.js';
