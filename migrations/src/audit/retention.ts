import type { Transaction } from 'sequelize';
import { sealAudit } from '@vextrus/shared';
import { execute, inTransaction, select, type Database } from '../database.js';
import { MigrationError, MigrationErrorCode, describe } from '../errors.js';
import { validateSlug } from '../identifiers.js';
import { withAdvisoryLock } from '../lock.js';
import { auditTenant, liveAuditTenants, type AuditTenant } from './registry.js';

/** The bounds of platform.tenants.audit_retention_days (its check constraint). */
export const MIN_RETENTION_DAYS = 1;
export const MAX_RETENTION_DAYS = 36_500;
export const DEFAULT_BATCH_SIZE = 5_000;

/**
 * Sets how many days of audit records a tenant keeps; the operator calls it with the value of
 * the Tenant's spec. Takes effect at the next retention run.
 */
export async function setAuditRetention(db: Database, slug: string, days: number): Promise<void> {
  validateSlug(slug);
  if (!Number.isInteger(days) || days < MIN_RETENTION_DAYS || days > MAX_RETENTION_DAYS) {
    throw new MigrationError(
      MigrationErrorCode.InvalidArguments,
      `cannot set the audit retention of ${slug}: ${String(days)} is not a whole number of ` +
        `days from ${MIN_RETENTION_DAYS} to ${MAX_RETENTION_DAYS}`,
    );
  }
  const rows = await select<{ slug: string }>(
    db,
    `UPDATE platform.tenants SET audit_retention_days = $2, updated_at = now()
      WHERE slug = $1 RETURNING slug`,
    [slug, days],
  ).catch((err: unknown) => {
    throw new MigrationError(
      MigrationErrorCode.MigrationFailed,
      `cannot set the audit retention of ${slug}: ${describe(err)}`,
      { cause: err },
    );
  });
  if (rows.length === 0) {
    throw new MigrationError(
      MigrationErrorCode.TenantNotProvisioned,
      `cannot set the audit retention of ${slug}: the tenant is not in the registry`,
    );
  }
}

export interface RetentionOptions {
  /** Records deleted per transaction: each batch holds the chain row only briefly. */
  batchSize?: number;
}

export interface RetentionResult {
  tenant: string;
  retentionDays: number;
  /** Records older than this (ISO 8601) were deleted. */
  cutoff: string;
  deleted: number;
  /** The retention checkpoint after the run: the last deleted record, ever. */
  checkpoint: { sequence: number; hash: string };
}

/** A record a batch would delete, and whether it links to the checkpoint or the one before. */
interface DoomedRow {
  sequence: string;
  intact: boolean;
}

interface Checkpoint {
  sequence: string;
  hash: string;
}

/**
 * Deletes the tenant's audit records older than its retention window, oldest first, in
 * batches of their own transactions. Each batch first checks the records it is about to delete
 * (hashes, links, no gap after the checkpoint) and stops when the chain is broken there, so that
 * retention never removes the evidence of tampering. The database keeps the checkpoint
 * (sequence and hash of the last deleted record), so the chain still verifies from the oldest
 * kept record. Runs as whatever role the database connection logs in as: the retention role in
 * production, the only one besides the owner with DELETE on audit_events. Row-level security
 * applies to it, so each transaction names the tenant. Records still pending (not yet chained)
 * are sealed first.
 */
export async function enforceTenantRetention(
  db: Database,
  tenant: AuditTenant,
  options: RetentionOptions = {},
): Promise<RetentionResult> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const bindTenant = async (transaction: Transaction): Promise<void> =>
    execute(
      db,
      `SELECT set_config('app.tenant_id', $1, true), set_config('search_path', $2, true)`,
      [tenant.id, `"${tenant.schema}"`],
      transaction,
    );
  try {
    // Records still pending are chained first: the window applies to every committed record.
    await sealAudit(db.sequelize, { tenantId: tenant.id, schema: tenant.schema });
    const [{ cutoff } = { cutoff: '' }] = await select<{ cutoff: string }>(
      db,
      `SELECT to_char((now() - make_interval(days => $1)) AT TIME ZONE 'UTC',
                      'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cutoff`,
      [tenant.retentionDays],
    );
    let deleted = 0;
    for (;;) {
      const count = await inTransaction(db, async (transaction) => {
        await bindTenant(transaction);
        // No row locks (they need UPDATE, which the retention role lacks): the tenant's lock
        // keeps other runs out and records are never updated, so the DELETE removes what was
        // checked.
        const batch = await select<DoomedRow>(
          db,
          `SELECT d.sequence,
                  (d.hash = d.recomputed AND
                   d.previous_hash = coalesce(lag(d.hash) OVER w, c.checkpoint_hash) AND
                   d.sequence = c.checkpoint_sequence + row_number() OVER w) IS TRUE AS intact
             FROM (SELECT e.sequence, e.previous_hash, e.hash, audit_event_hash(e) AS recomputed
                     FROM audit_events e
                    WHERE e.tenant_id = platform.current_tenant_id() AND e.occurred_at < $1
                    ORDER BY e.sequence LIMIT $2) d
             LEFT JOIN audit_chain c ON c.tenant_id = platform.current_tenant_id()
           WINDOW w AS (ORDER BY d.sequence)
            ORDER BY d.sequence`,
          [cutoff, batchSize],
          transaction,
        );
        const broken = batch.find((row) => !row.intact);
        if (broken) {
          throw new MigrationError(
            MigrationErrorCode.DriftDetected,
            `the audit chain of ${tenant.slug} is broken at record ${broken.sequence}: ` +
              `retention stops rather than remove the evidence (run audit verify ${tenant.slug})`,
          );
        }
        if (batch.length === 0) return 0;
        const [row] = await select<{ deleted: string }>(
          db,
          `WITH gone AS (
             DELETE FROM audit_events
              WHERE tenant_id = platform.current_tenant_id() AND sequence = ANY($1::bigint[])
             RETURNING 1
           )
           SELECT count(*) AS deleted FROM gone`,
          [batch.map((r) => r.sequence)],
          transaction,
        );
        return Number(row?.deleted ?? 0);
      });
      deleted += count;
      if (count < batchSize) break;
    }
    const [checkpoint] = await inTransaction(db, async (transaction) => {
      await bindTenant(transaction);
      return select<Checkpoint>(
        db,
        `SELECT checkpoint_sequence AS sequence, encode(checkpoint_hash, 'hex') AS hash
           FROM audit_chain WHERE tenant_id = platform.current_tenant_id()`,
        [],
        transaction,
      );
    });
    db.logger.info({ tenant: tenant.slug, deleted, cutoff }, 'audit retention enforced');
    return {
      tenant: tenant.slug,
      retentionDays: tenant.retentionDays,
      cutoff,
      deleted,
      checkpoint: {
        sequence: Number(checkpoint?.sequence ?? 0),
        hash: checkpoint?.hash ?? '0'.repeat(64),
      },
    };
  } catch (err) {
    throw new MigrationError(
      err instanceof MigrationError ? err.code : MigrationErrorCode.MigrationFailed,
      `cannot enforce the audit retention of ${tenant.slug}: ${describe(err)}`,
      { cause: err },
    );
  }
}

export interface RetentionRun {
  done: RetentionResult[];
  failed: { tenant: string; error: string }[];
  /** Tenants of an --all run that were deleted or retained before the run got to them. */
  skipped: { tenant: string; reason: string }[];
}

/** Codes that say a tenant listed by an --all run is no longer one whose log is kept up. */
const GONE: readonly string[] = [
  MigrationErrorCode.TenantNotProvisioned,
  MigrationErrorCode.TenantNotActive,
];

/**
 * Enforces retention for one tenant (by slug) or for every live tenant. One tenant's failure
 * does not stop the others; the run reports it, and the caller exits non-zero.
 *
 * Each tenant's retention holds the tenant's advisory lock, as migrations, repair and
 * deprovisioning do, and reads the tenant again under it: a run never deletes from a tenant
 * that was retained or deleted after the run listed it (an --all run skips such a tenant), never
 * races a migration of the audit tables, and two runs for one tenant take turns.
 */
export async function enforceAuditRetention(
  db: Database,
  scope: { slug: string } | { all: true },
  options: RetentionOptions = {},
): Promise<RetentionRun> {
  const tenants =
    'slug' in scope ? [await auditTenant(db, scope.slug)] : await liveAuditTenants(db);
  const run: RetentionRun = { done: [], failed: [], skipped: [] };
  for (const listed of tenants) {
    try {
      const result = await withAdvisoryLock(db, `tenant:${listed.slug}`, async () =>
        enforceTenantRetention(db, await auditTenant(db, listed.slug), options),
      );
      run.done.push(result);
    } catch (err) {
      if ('all' in scope && err instanceof MigrationError && GONE.includes(err.code)) {
        db.logger.info({ tenant: listed.slug, reason: err.message }, 'audit retention skipped');
        run.skipped.push({ tenant: listed.slug, reason: err.message });
        continue;
      }
      db.logger.error({ tenant: listed.slug, err }, 'audit retention failed');
      run.failed.push({ tenant: listed.slug, error: describe(err) });
    }
  }
  return run;
}
