import { diffFields, type AuditEvent } from '@vextrus/shared';

/**
 * The audit records of this service, through the shared audit facility: every mutation calls
 * recordAudit inside its tenant transaction, so the record commits or rolls back with it.
 * Refusals are recorded by the shared auditRefusals and auditClientErrors (see service.ts).
 */
export { recordAudit } from '@vextrus/shared';

/** Bookkeeping fields that every change touches; they would only add noise to each record. */
const BOOKKEEPING = new Set(['version', 'createdAt', 'updatedAt']);

function withoutBookkeeping(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(row).filter(([name]) => !BOOKKEEPING.has(name)));
}

/** The changed business fields between two snapshots of a record, for AuditEvent.changes. */
export function changesOf(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): AuditEvent['changes'] {
  return diffFields(withoutBookkeeping(before), withoutBookkeeping(after));
}
