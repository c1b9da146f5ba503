import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '@vextrus/shared';

/**
 * The audit records of this service, written against the API of the shared audit facility
 * (recordAudit inside the tenant transaction, diffFields for the changes).
 *
 * NOTE: The shared audit facility (services/shared/src/audit) has not been committed yet, so
 * recordAudit only writes a structured log line for now; once it lands, this module delegates to
 * it, the records join the tenant transaction, and the callers stay as they are.
 */

export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditEvent {
  action: string;
  outcome: AuditOutcome;
  resourceType?: string;
  resourceId?: string;
  changes?: { before?: Record<string, unknown>; after?: Record<string, unknown> };
  details?: Record<string, unknown>;
}

let auditLogger: Logger | undefined;

/** Where the interim records go until the shared facility exists. */
export function useAuditLogger(logger: Logger): void {
  auditLogger = logger.child({ audit: true });
}

export function recordAudit(event: AuditEvent): Promise<void> {
  auditLogger?.info({ event }, 'audit');
  return Promise.resolve();
}

/** The fields that differ between two snapshots, as the shared facility's diffFields gives them. */
export function diffFields(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): AuditEvent['changes'] {
  const changedBefore: Record<string, unknown> = {};
  const changedAfter: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (isDeepStrictEqual(before[key], after[key])) continue;
    if (before[key] !== undefined) changedBefore[key] = before[key];
    if (after[key] !== undefined) changedAfter[key] = after[key];
  }
  if (Object.keys(changedAfter).length === 0 && Object.keys(changedBefore).length === 0) {
    return undefined;
  }
  return { before: changedBefore, after: changedAfter };
}
