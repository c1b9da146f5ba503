import { ConnectionError, QueryTypes, Transaction, type Sequelize } from 'sequelize';
import { enableTransactionContext, namespace } from './cls.js';
import type { AppError } from '../http/errors.js';
import { sessionEnded, TenancyError, TenancyErrorCode, tenantErrors } from './errors.js';

/** Whose data a request touches: taken from the verified token, never from a header alone. */
export interface TenantContext {
  /** The tenant's id in platform.tenants; row-level security compares tenant_id with it. */
  tenantId: string;
  /** The tenant's schema, `tenant_<slug>`; put first on the search path. */
  schema: string;
  /**
   * The tenant's database role (platform.tenants.role_name). When given, the transaction acts
   * as it, so that another tenant's schema is not even readable; recommended.
   */
  role?: string;
}

const TENANT_KEY = 'vextrus.tenant';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TENANT_SCHEMA = /^tenant_[a-z][a-z0-9_]{0,62}$/;
const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

function validate(context: TenantContext): void {
  const problem = !UUID.test(context.tenantId)
    ? 'tenantId is not a uuid'
    : !TENANT_SCHEMA.test(context.schema)
      ? `schema ${JSON.stringify(context.schema)} is not a tenant schema`
      : context.role !== undefined && !ROLE.test(context.role)
        ? `role ${JSON.stringify(context.role)} is not a role name`
        : undefined;
  if (problem) {
    throw new TenancyError(
      TenancyErrorCode.InvalidContext,
      `cannot open a tenant transaction: ${problem}`,
    );
  }
}

/** The pg client a Sequelize transaction holds (Sequelize's postgres connection is one). */
interface PgResult {
  rows: unknown[];
  /** The command tag: COMMIT, or ROLLBACK when a COMMIT met an aborted transaction. */
  command?: string;
}

/** A query as pg's Client#query takes it, for rows as arrays of unparsed text. */
interface PgTextQuery {
  text: string;
  values?: unknown[];
  rowMode: 'array';
  types: { getTypeParser: () => (value: string) => string };
}

interface PgConnection {
  /** One result, or one per statement when the text holds several. */
  query(text: string | PgTextQuery, values?: unknown[]): Promise<PgResult | PgResult[]>;
  /** Sequelize's mark for a connection its pool must destroy instead of reusing. */
  _invalid?: boolean;
}

/** Sequelize's postgres Query class, whose formatError turns a pg error into Sequelize's. */
type DialectQuery = new (
  connection: PgConnection,
  sequelize: Sequelize,
  options: object,
) => { formatError(error: unknown, stack?: string): Error };

/** The tenant of the transaction the caller runs in, if any. */
export function currentTenant(): TenantContext | undefined {
  return namespace.get(TENANT_KEY) as TenantContext | undefined;
}

/**
 * Runs fn in one transaction bound to the tenant: it first sets `app.tenant_id`, the search path
 * and (when given) the tenant role, all transaction-local (set_config(..., true), never a
 * session SET on a pooled connection), so nothing survives the commit or rollback. Every
 * Sequelize query made inside fn, however deep, uses this transaction without passing it.
 * Commits when fn resolves, rolls back when it throws.
 *
 * Inside a transaction of the same tenant, fn joins it; inside another tenant's, it throws.
 */
export async function withTenantTransaction<T>(
  sequelize: Sequelize,
  context: TenantContext,
  fn: (transaction: Transaction) => Promise<T>,
): Promise<T> {
  validate(context);
  enableTransactionContext(sequelize);
  const outer = currentTenant();
  const open = namespace.get('transaction') as Transaction | null | undefined;
  if (outer && open) {
    if (outer.tenantId === context.tenantId && outer.schema === context.schema) return fn(open);
    throw new TenancyError(
      TenancyErrorCode.NestedContext,
      'cannot open a tenant transaction inside the transaction of another tenant',
    );
  }
  const settings: Record<string, string> = {
    'app.tenant_id': context.tenantId,
    search_path: `"${context.schema}"`,
  };
  if (context.role !== undefined) settings.role = context.role;
  const frozen = Object.freeze({ ...context });
  return transactionWithSettings(sequelize, settings, fn, {
    onContext: () => namespace.set(TENANT_KEY, frozen),
    // The tenant role was revoked (the tenant is being retained or deleted) while a cached
    // directory entry still called it active: the tenant is unavailable, not a server error.
    // 42501: the role's grant was revoked; 22023: the role itself is gone (tenant deleted).
    openingError: (err) =>
      ['42501', '22023'].includes(sqlState(err) ?? '')
        ? tenantUnavailable(context.schema, err)
        : err,
  });
}

/**
 * Runs fn in a tenant transaction of its own, as withTenantTransaction does, but never joins
 * the caller's transaction, even one of the same tenant: what fn writes stays when the caller's
 * work rolls back (the audit records of refused attempts).
 */
export async function withOwnTenantTransaction<T>(
  sequelize: Sequelize,
  context: TenantContext,
  fn: (transaction: Transaction) => Promise<T>,
): Promise<T> {
  return namespace.run(() => {
    namespace.set('transaction', undefined);
    namespace.set(TENANT_KEY, undefined);
    return withTenantTransaction(sequelize, context, fn);
  });
}

/** A failure of the statement that opens the transaction and applies its settings. */
class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

/** Setting names and values that may be written into the opening statement as literals. */
const SETTING_NAME = /^[a-z_][a-z0-9_.]{0,62}$/;
const SETTING_VALUE = /^[A-Za-z0-9_".-]{1,128}$/;

/** The parts of Sequelize's Transaction that its typings leave out. */
interface TransactionInternals {
  connection: PgConnection;
  finished?: string;
  _afterCommitHooks: ((transaction: Transaction) => unknown)[];
  cleanup(): void;
  forceCleanup(): Promise<void>;
}

/** A statement sent with the COMMIT, and what its failure becomes. */
interface CommitStatement {
  text: string;
  failure: (err: unknown) => unknown;
  /** The savepoints it was queued in, innermost first: it is dropped if one rolls back. */
  savepoints: readonly Transaction[];
}

/** A savepoint's parent transaction, or undefined for a transaction of its own. */
function parentOf(transaction: Transaction): Transaction | undefined {
  return (transaction as unknown as { parent?: Transaction }).parent;
}

/** The transaction that a savepoint (or a savepoint of one) belongs to; itself for none. */
export function outermostTransaction(transaction: Transaction): Transaction {
  let root = transaction;
  for (let parent = parentOf(root); parent; parent = parentOf(root)) root = parent;
  return root;
}

function finishedState(transaction: Transaction): string | undefined {
  return (transaction as unknown as TransactionInternals).finished;
}

/**
 * A Sequelize transaction whose BEGIN also applies its settings: Sequelize's prepareEnvironment
 * calls begin(), which here sends `START TRANSACTION; SELECT set_config(…, true), …` as one
 * simple-protocol statement, one round trip instead of two. Its COMMIT goes straight to the pg
 * client as well (what Transaction.commit does, minus the trip through sequelize.query), and
 * carries the statements queued for it (sendWithCommit). Everything else (the pool, the CLS
 * binding, rollback, afterCommit hooks) is Sequelize's own.
 */
class SettingsTransaction extends Transaction {
  constructor(
    private readonly db: Sequelize,
    private readonly opening: string,
  ) {
    super(db, {});
  }

  /**
   * The opening statement's outcome: undefined once it succeeded, its error if it failed. Set by
   * begin(); the statement may still be running when fn starts.
   */
  opened: Promise<SettingsError | undefined> = Promise.resolve(undefined);

  /** What goes to PostgreSQL in front of the COMMIT, in the same simple query. */
  readonly withCommit: CommitStatement[] = [];

  /**
   * Called by Sequelize in place of its START TRANSACTION. It sends the opening statement and
   * returns without waiting for its answer: pg runs a client's statements one after another, in
   * the order they were issued, so fn's first statement, queued behind it on the same client,
   * can only run once the settings are in place, and it goes to the server as soon as the opening
   * is answered instead of one event-loop turn of this process later (the connection is held for
   * less time). Had the opening failed, everything after it fails too (the transaction is
   * aborted) and the wrapper reports the opening's error.
   */
  async begin(): Promise<void> {
    const { connection } = this as unknown as { connection: PgConnection };
    this.opened = clientRows(this.db, connection, this.opening, []).then(
      () => undefined,
      (err: unknown) => new SettingsError('cannot open the transaction', { cause: err }),
    );
    return Promise.resolve();
  }

  /**
   * Transaction.commit of Sequelize 6, with the COMMIT sent on the client directly, behind the
   * statements queued for it. In a simple query PostgreSQL runs them in order and skips the rest
   * after an error, so a failed statement leaves the COMMIT unrun and the transaction aborted;
   * the connection is then destroyed, which rolls it back, and commitFailure says what to throw.
   */
  override async commit(): Promise<void> {
    const self = this as unknown as TransactionInternals;
    if (self.finished) {
      throw new Error(`Transaction cannot be committed: it has been finished (${self.finished})`);
    }
    const queued = this.withCommit
      .splice(0)
      .filter((q) => !q.savepoints.some((savepoint) => finishedState(savepoint) === 'rollback'));
    try {
      self.finished = 'commit';
      const text = [...queued.map((q) => q.text), 'COMMIT'].join(';\n');
      const result = await clientQuery(this.db, self.connection, text, []);
      const last = Array.isArray(result) ? result.at(-1) : result;
      if (last?.command === 'ROLLBACK') throw rolledBack();
      self.cleanup();
    } catch (err) {
      const failure = await commitFailure(self.connection, err, queued);
      // The connection is in an unknown state: the pool destroys it instead of reusing it.
      await self.forceCleanup();
      throw failure;
    } finally {
      for (const hook of self._afterCommitHooks) await hook.apply(this, [this]);
    }
  }
}

/**
 * What a failed commit throws. A lost connection becomes Sequelize's ConnectionError, as it is
 * when a connection cannot be had (the service answers 503, not 500); the changes and the queued
 * statements then committed together or not at all, and mostly not at all (a COMMIT already on
 * its way when the connection broke may have run). Otherwise, with statements queued in front
 * of the COMMIT, PostgreSQL's error does not say which statement of the query failed:
 * - a queued statement that met a transaction already aborted (25P02: an earlier error was
 *   caught and ignored) is the caller's rollback, reported as it is without queued statements;
 * - one more statement tells the rest apart: it fails while the transaction is still open and
 *   aborted (a queued statement failed: its failure() says what to throw), and succeeds once
 *   the COMMIT ran and failed (a deferred constraint, a serialization failure), whose own error
 *   is then thrown, as without queued statements.
 */
async function commitFailure(
  connection: PgConnection,
  err: unknown,
  queued: readonly CommitStatement[],
): Promise<unknown> {
  if (err instanceof TenancyError) return err;
  const original = (err as { original?: unknown } | null)?.original ?? err;
  const code = (original as { code?: unknown } | null)?.code;
  // An error of the client (no SQLSTATE: the socket closed, the client is not queryable) or a
  // session PostgreSQL ended.
  const lost =
    typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)
      ? sessionEnded(code)
      : original instanceof Error;
  if (lost || connection._invalid) return new ConnectionError(original as Error);
  const first = queued[0];
  if (!first) return err;
  if (code === '25P02') return rolledBack();
  const transactionOver = await connection.query('SELECT 1').then(
    () => true,
    () => false,
  );
  return transactionOver ? err : first.failure(err);
}

function rolledBack(): TenancyError {
  return new TenancyError(
    TenancyErrorCode.RolledBack,
    'the transaction was rolled back, not committed: a statement in it failed and its ' +
      'error was caught and ignored',
  );
}

/**
 * Queues `text` to go to PostgreSQL with the COMMIT of `transaction`, in the same simple query,
 * in front of it: it costs no round trip of its own, and it runs (and so holds any lock it
 * takes) only while that last query runs. It commits with the transaction's changes or not at
 * all; a transaction that rolls back never sends it, nor does one whose savepoint (given as
 * `transaction`, or one around it) rolls back. If it fails, the commit throws what `failure`
 * makes of the error. Returns false, queueing nothing, for a transaction that cannot carry it:
 * one not opened by transactionWithSettings (withTenantTransaction), or one already finished;
 * the caller then sends the statement itself.
 */
export function sendWithCommit(
  transaction: Transaction,
  text: string,
  failure: (err: unknown) => unknown,
): boolean {
  const savepoints: Transaction[] = [];
  let root = transaction;
  for (let parent = parentOf(root); parent; parent = parentOf(root)) {
    savepoints.push(root);
    root = parent;
  }
  if (!(root instanceof SettingsTransaction)) return false;
  if (finishedState(root) || savepoints.some(finishedState)) return false;
  root.withCommit.push({ text, failure, savepoints });
  return true;
}

interface PreparedTransaction {
  prepareEnvironment(useCls: boolean): Promise<void>;
}

/**
 * Runs fn in a new transaction that first sets each of `settings` transaction-locally
 * (set_config(name, value, true)), in the same round trip as its BEGIN; commits when fn resolves,
 * rolls back when it throws. Sequelize queries inside fn use the transaction (CLS). The building
 * block of withTenantTransaction, which is what requests must use; exported so that a benchmark
 * can open a transaction of exactly the same shape without a tenant. Names and values are
 * written into the statement as literals, so only plain identifiers, quoted schema names, uuids
 * and role names are accepted.
 */
export async function transactionWithSettings<T>(
  sequelize: Sequelize,
  settings: Record<string, string>,
  fn: (transaction: Transaction) => Promise<T>,
  hooks: {
    /** Called inside the new transaction context, before the transaction opens. */
    onContext?: () => void;
    /** Maps a failure of the opening statement (BEGIN and settings) to the error to throw. */
    openingError?: (err: unknown) => unknown;
  } = {},
): Promise<T> {
  const entries = Object.entries(settings);
  for (const [name, value] of entries) {
    if (!SETTING_NAME.test(name) || !SETTING_VALUE.test(value)) {
      throw new TenancyError(
        TenancyErrorCode.InvalidContext,
        `cannot open a transaction with the setting ${JSON.stringify(name)}: ` +
          'only plain names and values are accepted',
      );
    }
  }
  const opening =
    'START TRANSACTION' +
    (entries.length === 0
      ? ''
      : `; SELECT ${entries.map(([n, v]) => `set_config('${n}', '${v}', true)`).join(', ')}`);
  enableTransactionContext(sequelize);
  const transaction = new SettingsTransaction(sequelize, opening);
  return namespace.run(async () => {
    hooks.onContext?.();
    // As sequelize.transaction(callback) does, with this transaction class.
    try {
      await (transaction as unknown as PreparedTransaction).prepareEnvironment(true);
    } catch (err) {
      // prepareEnvironment has rolled back and released the connection already.
      const cause = err instanceof SettingsError ? err.cause : err;
      throw hooks.openingError ? hooks.openingError(cause) : cause;
    }
    // The opening is awaited only after fn: by then fn's statements, queued behind it, have run.
    let result: T;
    try {
      result = await fn(transaction);
      const failed = await transaction.opened;
      if (failed) throw failed;
    } catch (err) {
      try {
        await transaction.rollback();
      } catch {
        // The error of fn is the one to report; a failed rollback destroys the connection.
      }
      const failed = await transaction.opened;
      if (!failed) throw err;
      throw hooks.openingError ? hooks.openingError(failed.cause) : failed.cause;
    }
    await transaction.commit();
    return result;
  });
}

/**
 * Rows of one statement, run directly on the pg client of the transaction the caller is in (the
 * request's tenant transaction), or through sequelize.query outside of one. The direct path
 * skips Sequelize's per-query work (option merging, placeholder parsing, retry wrapper, hooks),
 * which on the hot path costs more than the statement itself; a failure still becomes the same
 * Sequelize error (UniqueConstraintError, DatabaseError with `parent.code`, …) that
 * sequelize.query would throw. Statement text must be the caller's constant; values go in
 * `bind` ($1, $2, …) only.
 */
export async function transactionRows<T extends object>(
  sequelize: Sequelize,
  text: string,
  bind: unknown[] = [],
): Promise<T[]> {
  const transaction = namespace.get('transaction') as
    (Transaction & { connection?: PgConnection; finished?: string }) | null | undefined;
  const connection = transaction?.connection;
  if (!transaction || !connection || transaction.finished) {
    const [rows] = await sequelize.query(text, { bind, type: QueryTypes.RAW, raw: true });
    return rows as T[];
  }
  return clientRows<T>(sequelize, connection, text, bind);
}

/** A type parser that leaves every value as PostgreSQL's text output. */
const AS_TEXT = { getTypeParser: () => (value: string) => value };

/**
 * Rows of one statement on `transaction`'s pg client, each an array of column values as
 * PostgreSQL's text output (null for NULL), unparsed: for results that are only passed on as
 * text, where building a Date or parsing JSON per value would cost more than the query. A
 * failure becomes the Sequelize error sequelize.query would throw.
 */
export async function transactionTextRows(
  sequelize: Sequelize,
  transaction: Transaction,
  text: string,
  bind: unknown[] = [],
): Promise<(string | null)[][]> {
  const connection = (transaction as Transaction & { connection?: PgConnection }).connection;
  if (!connection) throw new Error('transactionTextRows needs a transaction that has begun');
  const query: PgTextQuery = { text, values: bind, rowMode: 'array', types: AS_TEXT };
  const result = await clientQuery(sequelize, connection, query, bind);
  return (Array.isArray(result) ? (result.at(-1)?.rows ?? []) : result.rows) as (string | null)[][];
}

/** One statement on a transaction's pg client; a failure becomes Sequelize's error for it. */
async function clientRows<T>(
  sequelize: Sequelize,
  connection: PgConnection,
  text: string,
  bind: unknown[],
): Promise<T[]> {
  const result = await clientQuery(sequelize, connection, text, bind);
  return (Array.isArray(result) ? (result.at(-1)?.rows ?? []) : result.rows) as T[];
}

/**
 * A statement on the pg client, its failure turned into Sequelize's error as sequelize.query
 * does.
 */
async function clientQuery(
  sequelize: Sequelize,
  connection: PgConnection,
  query: string | PgTextQuery,
  bind: unknown[],
): Promise<PgResult | PgResult[]> {
  // Where the statement came from: pg's own error has no useful stack once it crosses the socket.
  const site = new Error();
  const text = typeof query === 'string' ? query : query.text;
  try {
    return await connection.query(query, bind.length > 0 ? bind : undefined);
  } catch (err) {
    if (typeof err !== 'object' || err === null) throw err;
    const e = err as { code?: string; sql?: string; parameters?: unknown[] };
    // As Sequelize does: a connection reset is not given back to the pool for reuse.
    if (e.code === 'ECONNRESET') connection._invalid = true;
    e.sql = text;
    e.parameters = bind;
    const { Query } = (sequelize as unknown as { dialect: { Query: DialectQuery } }).dialect;
    throw new Query(connection, sequelize, { logging: false }).formatError(err, site.stack);
  }
}

function sqlState(err: unknown): string | undefined {
  const e = err as { original?: { code?: string }; parent?: { code?: string }; code?: string };
  return e.original?.code ?? e.parent?.code ?? e.code;
}

function tenantUnavailable(schema: string, cause: unknown): AppError {
  return tenantErrors.TENANT_UNAVAILABLE(`The tenant of ${schema} is not active`, {}, { cause });
}
