import pg from 'pg';
import type { Sequelize, Transaction } from 'sequelize';
import { sendWithCommit } from '../tenancy/context.js';
import { AuditError, AuditErrorCode } from './errors.js';

/**
 * Audit records that wait for their transaction's COMMIT and go to PostgreSQL in the same
 * simple query, in front of it: `SELECT audit_append(...); ...; COMMIT` (sendWithCommit of the
 * tenant transaction). A mutation then costs no extra round trip for its record, and the
 * tenant's chain row stays locked only while that one query runs instead of from the record
 * until the commit.
 *
 * Guarantees, the same as an INSERT sent at once:
 * - the records and the change commit together or not at all: a failed append leaves the COMMIT
 *   unrun and the transaction rolled back, and the caller gets AUDIT_WRITE_FAILED;
 * - a transaction that rolls back (its function threw) sends nothing.
 * Values travel as literals (a simple query takes no parameters).
 */

/** The actions recorded by each transaction's queued statements, for the failure message. */
const queuedActions = new WeakMap<Transaction, string[]>();

/** Text PostgreSQL would refuse in a literal: NUL. */
const NUL = '\u0000';

/**
 * A quoted SQL string literal of `text` (NUL dropped). Text with no quote or backslash, which is
 * nearly all of it, is quoted as it is; the rest goes through pg.escapeLiteral.
 */
function quote(text: string): string {
  const clean = text.includes(NUL) ? text.replaceAll(NUL, '') : text;
  return clean.includes("'") || clean.includes('\\') ? pg.escapeLiteral(clean) : `'${clean}'`;
}

/** A SQL literal of a value: NULL, a quoted string, or an array of quoted strings. */
export function literal(value: string | readonly string[] | null, type: string): string {
  if (value === null) return 'NULL';
  const text = typeof value === 'string' ? quote(value) : `ARRAY[${value.map(quote).join(', ')}]`;
  return `${text}::${type}`;
}

/**
 * The statement text on a failed record's error (Sequelize's `sql`, pg's on `parent` and
 * `original`) holds the record's values as literals: user agents, addresses, the change. The
 * error goes to the logs, so the text is cut down to the statement's name.
 */
function withoutValues(err: unknown): unknown {
  if (typeof err !== 'object' || err === null) return err;
  const e = err as { sql?: unknown; parent?: { sql?: unknown }; original?: { sql?: unknown } };
  for (const holder of [e, e.parent, e.original]) {
    if (holder && typeof holder.sql === 'string') holder.sql = 'SELECT audit_append(…)';
  }
  return err;
}

function writeFailed(actions: readonly string[], err: unknown): AuditError {
  withoutValues(err);
  return new AuditError(
    AuditErrorCode.WriteFailed,
    `cannot record audit event ${actions.join(', ')}: ${(err as Error).message}`,
    { cause: err },
  );
}

/**
 * Sends `statement`, which records `action`, with the COMMIT of `transaction` (in a savepoint,
 * with the COMMIT of the transaction around it, unless the savepoint rolls back). A transaction
 * that cannot carry it (one not opened by withTenantTransaction) gets the statement at once
 * instead. Failures reject with AUDIT_WRITE_FAILED: here when sent at once, else from the
 * transaction's commit.
 */
export async function runAtCommit(
  sequelize: Sequelize,
  transaction: Transaction,
  statement: string,
  action: string,
): Promise<void> {
  const actions = queuedActions.get(transaction) ?? [];
  const queued = sendWithCommit(transaction, statement, (err) => writeFailed(actions, err));
  if (queued) {
    actions.push(action);
    queuedActions.set(transaction, actions);
    return;
  }
  await sequelize.query(statement, { transaction }).catch((err: unknown) => {
    throw writeFailed([action], err);
  });
}
