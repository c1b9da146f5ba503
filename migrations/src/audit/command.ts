import type { Database } from '../database.js';
import { MigrationError, MigrationErrorCode } from '../errors.js';
import { validateSlug } from '../identifiers.js';
import { DEFAULT_BATCH_SIZE, enforceAuditRetention } from './retention.js';
import { verifyTenantAudit } from './verify.js';

export const AUDIT_USAGE = `  vextrus-migrate audit verify <slug>
  vextrus-migrate audit retention --tenant <slug>|--all [--batch-size N]`;

function usage(problem: string, full: string): MigrationError {
  return new MigrationError(MigrationErrorCode.InvalidArguments, `${problem}\n${full}`);
}

function batchSize(flags: Map<string, string | true>, full: string): number {
  const raw = flags.get('batch-size') ?? String(DEFAULT_BATCH_SIZE);
  const size = Number(raw);
  if (!Number.isInteger(size) || size < 1 || size > 100_000) {
    throw usage(`--batch-size must be an integer from 1 to 100000, not ${String(raw)}`, full);
  }
  return size;
}

/**
 * The `audit` command group. `verify` prints the chain report and fails when the chain is
 * broken; `retention` prints what it deleted per tenant and fails when a tenant failed.
 */
export async function runAudit(
  db: Database,
  positional: string[],
  flags: Map<string, string | true>,
  print: (value: unknown) => void,
  fullUsage: string,
): Promise<void> {
  const [action, slug] = positional;
  switch (action) {
    case 'verify': {
      if (!slug) throw usage('audit verify needs a tenant slug', fullUsage);
      validateSlug(slug);
      const report = await verifyTenantAudit(db, slug, { batchSize: batchSize(flags, fullUsage) });
      print(report);
      if (!report.valid) {
        throw new MigrationError(
          MigrationErrorCode.DriftDetected,
          `the audit chain of ${slug} is broken at record ${report.problem?.sequence}: ` +
            `${report.problem?.code} (${report.problem?.detail})`,
        );
      }
      return;
    }
    case 'retention': {
      const tenant = flags.get('tenant');
      const all = flags.has('all');
      if ((typeof tenant === 'string') === all) {
        throw usage('audit retention needs --tenant <slug> or --all', fullUsage);
      }
      const scope =
        typeof tenant === 'string' ? { slug: validateSlug(tenant) } : { all: true as const };
      const run = await enforceAuditRetention(db, scope, {
        batchSize: batchSize(flags, fullUsage),
      });
      print(run);
      if (run.failed.length > 0) {
        throw new MigrationError(
          MigrationErrorCode.MigrationFailed,
          `cannot enforce audit retention for ${run.failed.length} tenant(s); first: ` +
            `${run.failed[0]?.tenant}: ${run.failed[0]?.error}`,
        );
      }
      return;
    }
    default:
      throw usage(`unknown audit command ${JSON.stringify(action ?? '')}`, fullUsage);
  }
}
