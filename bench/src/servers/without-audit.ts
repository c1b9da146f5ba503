/**
 * What services/organization/src/audit.ts exports, for the benchmark's record-less baseline:
 * changesOf is the real one (the service still computes each change), recordAudit writes nothing.
 */
import type { AuditEvent } from '@vextrus/shared';

export { changesOf } from '../../../services/organization/src/audit.js';

export async function recordAudit(_event: AuditEvent): Promise<void> {
  // The baseline: the mutation commits without its record.
}
