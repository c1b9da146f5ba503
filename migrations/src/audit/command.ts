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

/** The flags each audit command takes; any other is refused rather than ignored. */
const FLAGS: Record<string, readonly string[]> = {
  verify: ['batch-size'],
  retention: ['tenant', 'all', 'batch-size'],
};

function batchSize(flags: Map<string, string | true>, full: string): number {
  const raw = flags.get('batch-size') ?? String(DEFAULT_BATCH_SIZE);
  if (raw === true) throw usage('--batch-size needs a value', full);
  // Plain decimal digits only: Number() would also take "0x10", "1e3" and " 5 ".
  const size = /^[1-9][0-9]{0,5}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(size) || size < 1 || size > 100_000) {
    throw usage(
      `--batch-size must be an integer from 1 to 100000, not ${JSON.stringify(raw.slice(0, 20))}`,
      full,
    );
  }
  return size;
}

/** Refuses arguments the command does not take: a misspelt flag must not be ignored. */
function onlyKnown(
  action: string,
  positional: string[],
  expected: number,
  flags: Map<string, string | true>,
  full: string,
): void {
  const allowed = FLAGS[action] ?? [];
  const unknown = [...flags.keys()].find((name) => !allowed.includes(name));
  if (unknown !== undefined) {
    throw usage(`audit ${action} does not take --${unknown.slice(0, 40)}`, full);
  }
  if (positional.length > expected) {
    const extra = JSON.stringify(positional[expected]?.slice(0, 40));
    throw usage(`audit ${action} does not take the argument ${extra}`, full);
  }
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
      onlyKnown(action, positional, 2, flags, fullUsage);
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
      onlyKnown(action, positional, 1, flags, fullUsage);
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
