export { runAudit, AUDIT_USAGE } from './command.js';
export {
  enforceAuditRetention,
  enforceTenantRetention,
  setAuditRetention,
  DEFAULT_BATCH_SIZE,
  MAX_RETENTION_DAYS,
  MIN_RETENTION_DAYS,
} from './retention.js';
export type { RetentionOptions, RetentionResult, RetentionRun } from './retention.js';
export { sealSchemaAudit, verifyTenantAudit } from './verify.js';
export { auditTenant, liveAuditTenants } from './registry.js';
export type { AuditTenant } from './registry.js';
