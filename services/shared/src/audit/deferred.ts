import pg from 'pg';
import type { Sequelize, Transaction } from 'sequelize';
import { AuditError, AuditErrorCode } from './errors.js';

/**
 * Audit records that wait for their transaction's COMMIT and go to PostgreSQL in the same
 * simple query, in front of it: `SELECT audit_append(...); ...; COMMIT`. A mutation then costs
 * no extra round trip for its record, and the tenant's chain row stays locked only while that
 * one query runs instead of from the record until the commit.
 *
 * Guarantees, the same as an INSERT sent at once:
 * - the records and the change commit together or not at all: in a simple query PostgreSQL
 *   runs the statements in order and skips the rest after an error, so a failed append leaves
 *   the COMMIT unsent to the executor and the transaction aborted; Sequelize then closes the
 *   connection, which rolls it back, and the caller gets AUDIT_WRITE_FAILED;
 * - a transaction that rolls back (its function threw) sends nothing.
 * Values travel as literals quoted by pg.escapeLiteral (a simple query takes no parameters).
 */

/** What waits for the COMMIT of an open transaction: statements and the actions they record. */
interface Waiting {
  statements: string[];
  actions: string[];
}

const pending = new WeakMap<Transaction, Waiting>();

interface CommitQueryGenerator {
  commitTransactionQuery(transaction: Transaction): string;
}

/** The hooked commitTransactionQuery of each Sequelize instance. */
const hooks = new WeakMap<Sequelize, CommitQueryGenerator['commitTransactionQuery']>();

function generatorOf(sequelize: Sequelize): CommitQueryGenerator {
  const queryInterface = sequelize.getQueryInterface() as unknown as {
    queryGenerator: CommitQueryGenerator;
  };
  return queryInterface.queryGenerator;
}

/**
 * Puts the transaction's waiting statements in front of the COMMIT that Sequelize sends in
 * Transaction#commit (its only way to commit); once per Sequelize instance.
 */
function hookCommit(sequelize: Sequelize): void {
  if (hooks.has(sequelize)) return;
  const generator = generatorOf(sequelize);
  const commitQuery = generator.commitTransactionQuery.bind(generator);
  const hook = (transaction: Transaction): string => {
    const commit = commitQuery(transaction);
    const waiting = pending.get(transaction);
    if (!waiting) return commit;
    pending.delete(transaction);
    return `${waiting.statements.join(';\n')};\n${commit}`;
  };
  generator.commitTransactionQuery = hook;
  hooks.set(sequelize, hook);
}

/** A SQL literal of a value: NULL, a quoted string, or an array of quoted strings. */
export function literal(value: string | readonly string[] | null, type: string): string {
  if (value === null) return 'NULL';
  const quote = (text: string): string => pg.escapeLiteral(text.replaceAll('\u0000', ''));
  const text = typeof value === 'string' ? quote(value) : `ARRAY[${value.map(quote).join(', ')}]`;
  return `${text}::${type}`;
}

function writeFailed(actions: readonly string[], err: unknown): AuditError {
  return new AuditError(
    AuditErrorCode.WriteFailed,
    `cannot record audit event ${actions.join(', ')}: ${(err as Error).message}`,
    { cause: err },
  );
}

/**
 * Sends `statement`, which records `action`, with the COMMIT of `transaction`. A savepoint (a
 * transaction nested with Sequelize's `transaction` option) can roll back on its own, so there
 * the statement is sent at once instead. Failures reject with AUDIT_WRITE_FAILED: here for a
 * savepoint, else from the transaction's commit.
 */
export async function runAtCommit(
  sequelize: Sequelize,
  transaction: Transaction,
  statement: string,
  action: string,
): Promise<void> {
  if ((transaction as unknown as { parent?: Transaction }).parent) {
    await sequelize.query(statement, { transaction }).catch((err: unknown) => {
      throw writeFailed([action], err);
    });
    return;
  }
  hookCommit(sequelize);
  const waiting = pending.get(transaction);
  if (waiting) {
    waiting.statements.push(statement);
    waiting.actions.push(action);
    return;
  }
  const actions = [action];
  pending.set(transaction, { statements: [statement], actions });
  const commit = transaction.commit.bind(transaction);
  transaction.commit = async (): Promise<void> => {
    try {
      // Should something have replaced the hook since, the records go first on their own.
      const unsent = pending.get(transaction);
      if (unsent && generatorOf(sequelize).commitTransactionQuery !== hooks.get(sequelize)) {
        pending.delete(transaction);
        await sequelize.query(unsent.statements.join(';\n'), { transaction });
      }
      await commit();
      if (pending.has(transaction)) {
        // A commit that did not ask the query generator for its text: loud, never silent.
        pending.delete(transaction);
        throw new Error('the COMMIT went out without the audit records queued for it');
      }
    } catch (err) {
      if (!(transaction as unknown as { finished?: string }).finished) {
        await transaction.rollback().catch(() => undefined);
      }
      throw writeFailed(actions, err);
    }
  };
}
