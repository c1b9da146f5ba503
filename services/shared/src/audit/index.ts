/**
 * The audit facility: one record per audited change, written in the change's own tenant
 * transaction, append-only, hash-chained per tenant (by the database), verifiable and kept for
 * a retention window.
 */
export { diffFields, AUDIT_OUTCOMES, REDACTED } from './event.js';
export type { AuditEvent, AuditOutcome } from './event.js';
export { recordAudit, recordAuditSeparately } from './record.js';
export type { RecordOptions } from './record.js';
export { verifyAuditChain } from './verify.js';
export { AuditSealer, sealAudit, startAuditSealer } from './sealer.js';
export type { AuditSealerOptions } from './sealer.js';
export type { ChainProblem, ChainProblemCode, ChainReport, VerifyOptions } from './verify.js';
export { AuditError, AuditErrorCode } from './errors.js';
export { auditRouter } from './router.js';
export type { AuditRouterOptions } from './router.js';
export { auditClientErrors, auditRefusals } from './refusals.js';
export type { RefusalAuditOptions, RefusalRecorder } from './refusals.js';
export { eventsQuery, exportQuery, verifyQuery } from './query.js';
export type { AuditFilters } from './query.js';
export {
  auditOpenApi,
  auditEventsPageSchema,
  auditRecordSchema,
  chainReportSchema,
} from './openapi.js';
export type { AuditOpenApi } from './openapi.js';
