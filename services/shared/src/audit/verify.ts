import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import { AppError } from '../http/errors.js';
import type { TenantContext } from '../tenancy/context.js';
import { AuditError, AuditErrorCode } from './errors.js';
import { openTenantTransaction } from './session.js';

/** Why the chain does not verify, at the first place it breaks. */
export type ChainProblemCode =
  /** Records are missing: the sequence jumps (deleted in the middle or at the start). */
  | 'MISSING_RECORDS'
  /** A record's previous hash is not the hash of the record before it (or of the checkpoint). */
  | 'BROKEN_LINK'
  /** A record's content no longer matches its hash: it was edited. */
  | 'RECORD_ALTERED'
  /** The last record is not the head of the chain: records at the end were removed. */
  | 'HEAD_MISMATCH'
  /**
   * Records are kept at or below the retention checkpoint, which says they were removed: the
   * walk, which starts at the checkpoint, never checked them (the checkpoint was moved over
   * them, or they were put back).
   */
  | 'RECORDS_BEHIND_CHECKPOINT';

export interface ChainProblem {
  code: ChainProblemCode;
  /** The sequence number where the chain breaks (of the first missing record for a gap). */
  sequence: number;
  /** The id of the record concerned, when there is one. */
  id?: string;
  detail: string;
}

export interface ChainReport {
  valid: boolean;
  /** Records walked (up to the first problem). */
  checked: number;
  /** Where the walk started: the retention checkpoint (0 and the zero hash when none). */
  checkpoint: { sequence: number; hash: string; at: string | null };
  /** The chain's head as its chain row records it. */
  head: { sequence: number; hash: string; at: string | null };
  problem?: ChainProblem;
}

export interface VerifyOptions {
  /** Records read per query; memory stays bounded by it. */
  batchSize?: number;
  /**
   * How long a query waits for a lock on the audit table before it fails (55P03 as the cause of
   * the AuditError); default 0, without bound.
   */
  lockTimeoutMs?: number;
  /** Stops the walk before its next batch (the client of the API went away). */
  signal?: AbortSignal;
}

interface ChainRow {
  head_sequence: string;
  head_hash: string;
  head_at: string | null;
  checkpoint_sequence: string;
  checkpoint_hash: string;
  checkpoint_at: string | null;
}

interface LinkRow {
  sequence: string;
  id: string;
  previous_hash: string;
  hash: string;
  recomputed: string;
}

const ZERO_HASH = '0'.repeat(64);
const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;

async function readChain(sequelize: Sequelize, transaction: Transaction): Promise<ChainRow> {
  const [row] = await sequelize.query<ChainRow>(
    `SELECT head_sequence, encode(head_hash, 'hex') AS head_hash,
            to_char(head_at AT TIME ZONE 'UTC', ${ISO}) AS head_at,
            checkpoint_sequence, encode(checkpoint_hash, 'hex') AS checkpoint_hash,
            to_char(checkpoint_at AT TIME ZONE 'UTC', ${ISO}) AS checkpoint_at
       FROM audit_chain WHERE tenant_id = platform.current_tenant_id()`,
    { transaction, type: QueryTypes.SELECT },
  );
  return (
    row ?? {
      head_sequence: '0',
      head_hash: ZERO_HASH,
      head_at: null,
      checkpoint_sequence: '0',
      checkpoint_hash: ZERO_HASH,
      checkpoint_at: null,
    }
  );
}

/** Compares one record with what the walk expects there; undefined when it fits. */
function check(link: LinkRow, sequence: number, previous: string): ChainProblem | undefined {
  const found = Number(link.sequence);
  if (found !== sequence) {
    return {
      code: 'MISSING_RECORDS',
      sequence,
      detail: `records ${sequence} to ${found - 1} are missing: the next record kept is ${found}`,
    };
  }
  if (link.previous_hash !== previous) {
    return {
      code: 'BROKEN_LINK',
      sequence,
      id: link.id,
      detail: `record ${sequence} does not follow the hash of record ${sequence - 1}`,
    };
  }
  if (link.recomputed !== link.hash) {
    return {
      code: 'RECORD_ALTERED',
      sequence,
      id: link.id,
      detail: `record ${sequence} no longer matches its hash: its content was changed`,
    };
  }
  return undefined;
}

/**
 * Walks the tenant's chain from the retention checkpoint to the head, in keyset batches inside
 * one snapshot, recomputing every hash, and reports the first broken or missing link. Runs as the
 * tenant role when the context names one (the services), else as the login (the CLI).
 */
export async function verifyAuditChain(
  sequelize: Sequelize,
  tenant: TenantContext,
  options: VerifyOptions = {},
): Promise<ChainReport> {
  const batchSize = options.batchSize ?? 5_000;
  let transaction: Transaction | undefined;
  try {
    transaction = await openTenantTransaction(sequelize, tenant, {
      snapshot: true,
      readOnly: true,
      lockTimeoutMs: options.lockTimeoutMs,
    });
    const chain = await readChain(sequelize, transaction);
    const report: ChainReport = {
      valid: true,
      checked: 0,
      checkpoint: {
        sequence: Number(chain.checkpoint_sequence),
        hash: chain.checkpoint_hash,
        at: chain.checkpoint_at,
      },
      head: { sequence: Number(chain.head_sequence), hash: chain.head_hash, at: chain.head_at },
    };
    // Retention removes records and moves the checkpoint in one transaction, and records are
    // never added below the head: in this snapshot none may sit at or below the checkpoint.
    const [behind] = await sequelize.query<{ sequence: string; id: string }>(
      `SELECT sequence, id FROM audit_events
        WHERE tenant_id = platform.current_tenant_id() AND sequence <= $1
        ORDER BY sequence LIMIT 1`,
      { transaction, type: QueryTypes.SELECT, bind: [report.checkpoint.sequence] },
    );
    if (behind) {
      const at = Number(behind.sequence);
      const detail =
        `record ${at} is still kept, but the retention checkpoint ` +
        `(${report.checkpoint.sequence}) says it was removed: it was never verified`;
      return {
        ...report,
        valid: false,
        problem: { code: 'RECORDS_BEHIND_CHECKPOINT', sequence: at, id: behind.id, detail },
      };
    }
    let sequence = report.checkpoint.sequence + 1;
    let previous = report.checkpoint.hash;
    let after = report.checkpoint.sequence;
    for (;;) {
      options.signal?.throwIfAborted();
      const links = await sequelize.query<LinkRow>(
        `SELECT e.sequence, e.id, encode(e.previous_hash, 'hex') AS previous_hash,
                encode(e.hash, 'hex') AS hash, encode(audit_event_hash(e), 'hex') AS recomputed
           FROM audit_events e
          WHERE e.tenant_id = platform.current_tenant_id() AND e.sequence > $1
          ORDER BY e.sequence LIMIT $2`,
        { transaction, type: QueryTypes.SELECT, bind: [after, batchSize] },
      );
      for (const link of links) {
        const problem = check(link, sequence, previous);
        if (problem) return { ...report, valid: false, problem };
        report.checked += 1;
        previous = link.hash;
        sequence += 1;
      }
      if (links.length < batchSize) break;
      after = sequence - 1;
    }
    const last = sequence - 1;
    if (last !== report.head.sequence || previous !== report.head.hash) {
      const detail =
        last < report.head.sequence
          ? `records ${last + 1} to ${report.head.sequence} at the end are missing`
          : `the last record ${last} is not the head of the chain (${report.head.sequence})`;
      return {
        ...report,
        valid: false,
        problem: { code: 'HEAD_MISMATCH', sequence: last + 1, detail },
      };
    }
    return report;
  } catch (err) {
    // A problem of the request's tenant (TENANT_UNAVAILABLE) is the caller's answer as it is.
    if (err instanceof AppError) throw err;
    throw new AuditError(
      AuditErrorCode.ReadFailed,
      `cannot verify the audit chain of ${tenant.schema}`,
      { cause: err },
    );
  } finally {
    await transaction?.rollback().catch(() => undefined);
  }
}
