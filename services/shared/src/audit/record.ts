import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import { currentRequestContext } from '../observability/context.js';
import { namespace } from '../tenancy/cls.js';
import {
  currentTenant,
  outermostTransaction,
  withOwnTenantTransaction,
  type TenantContext,
} from '../tenancy/context.js';
import { AuditError, AuditErrorCode } from './errors.js';
import {
  boundedText,
  normalizeChanges,
  normalizeDetails,
  validateEvent,
  type AuditEvent,
} from './event.js';
import { literal, runAtCommit } from './deferred.js';
import { sealSoon } from './sealer.js';

/** Options for imports and tests; services never pass them. */
export interface RecordOptions {
  /**
   * The record's time instead of the database clock. The chain trigger keeps it between the
   * time of the chain's head and now, so time never runs backwards along the chain.
   */
  occurredAt?: Date;
}

/** Who did it: the event's actor, else (unless a system component acts) the request's user. */
function actorOf(event: AuditEvent): [string | null, string[], string | null] {
  const context = currentRequestContext();
  const actor = event.actor;
  const fromContext = actor?.system === undefined;
  const userId = actor?.userId ?? (fromContext ? context?.userId : undefined);
  const roles = actor?.roles ?? (fromContext ? (context?.roles ?? []) : []);
  return [
    boundedText(userId, 128),
    roles.slice(0, 20).map((role) => boundedText(String(role), 64) ?? ''),
    boundedText(actor?.system, 128),
  ];
}

/** The columns audit_append(...) takes, in its order: what the caller gives of a record. */
const GIVEN_COLUMNS =
  'occurred_at, actor_user_id, actor_roles, actor_system, client_address, user_agent, ' +
  'request_id, action, resource_type, resource_id, outcome, changes, details';

/** audit_append's signature (tenant migration 2026120425-audit-fast-append). */
const APPEND_SIGNATURE =
  'audit_append(timestamptz, text, text[], text, text, text, text, text, text, text, text, ' +
  'jsonb, jsonb)';

/** How long a schema found without audit_append is written to by INSERT before looking again. */
const APPEND_RECHECK_MS = 30_000;

/** Per tenant schema: audit_append exists (true, for good), or when to look for it again. */
const appendFunctions = new Map<string, true | number>();

/**
 * Whether the tenant's schema has audit_append. Services can be upgraded before the operator has
 * migrated every tenant; a tenant still without the function gets the plain INSERT, which every
 * version of audit_events takes (its trigger builds the same chain), so audited writes never
 * depend on the order of the two upgrades. One lookup per schema and process once it is there;
 * while it is not, one every APPEND_RECHECK_MS.
 */
async function hasAppendFunction(
  sequelize: Sequelize,
  transaction: Transaction,
  schema: string,
): Promise<boolean> {
  const known = appendFunctions.get(schema);
  if (known === true) return true;
  if (known !== undefined && Date.now() < known) return false;
  const [row] = await sequelize.query<{ present: boolean }>(
    'SELECT to_regprocedure($1) IS NOT NULL AS present',
    { transaction, bind: [`"${schema}".${APPEND_SIGNATURE}`], type: QueryTypes.SELECT },
  );
  appendFunctions.set(schema, row?.present === true ? true : Date.now() + APPEND_RECHECK_MS);
  return row?.present === true;
}

/**
 * The statement that appends the record, with the values as literals so that it can travel in
 * one simple query with the COMMIT (./deferred.ts): audit_append(...), whose INSERT PL/pgSQL
 * plans once per session, or the same INSERT written out for a schema without the function.
 * audit_append stores the record as pending, to be chained after the commit (./sealer.ts); in a
 * schema from before 2026120426-audit-sealing, it and the plain INSERT are chained at once by the
 * insert trigger of audit_events (the tenant's chain row locked until the commit).
 */
function appendStatement(event: AuditEvent, options: RecordOptions, viaFunction: boolean): string {
  const context = currentRequestContext();
  const [userId, roles, system] = actorOf(event);
  const changes = normalizeChanges(event.changes);
  const details = normalizeDetails(event.details);
  const values = [
    literal(options.occurredAt?.toISOString() ?? null, 'timestamptz'),
    literal(userId, 'text'),
    literal(roles, 'text[]'),
    literal(system, 'text'),
    literal(boundedText(context?.clientIp, 64), 'text'),
    literal(boundedText(context?.userAgent, 256), 'text'),
    literal(boundedText(context?.reqId, 128), 'text'),
    literal(event.action, 'text'),
    literal(boundedText(event.resourceType, 100), 'text'),
    literal(boundedText(event.resourceId, 200), 'text'),
    literal(event.outcome, 'text'),
    literal(changes === null ? null : JSON.stringify(changes), 'jsonb'),
    literal(details === null ? null : JSON.stringify(details), 'jsonb'),
  ];
  return viaFunction
    ? `SELECT audit_append(${values.join(', ')})`
    : `INSERT INTO audit_events (${GIVEN_COLUMNS}) VALUES (${values.join(', ')})`;
}

/**
 * Writes the record in the current tenant transaction (withTenantTransaction); throws when
 * there is none. The record goes to PostgreSQL with the transaction's COMMIT, in the same round
 * trip (./deferred.ts): if writing it fails, nothing commits and withTenantTransaction rejects
 * with AUDIT_WRITE_FAILED. Its time is therefore that of the commit, unless options say another.
 */
export async function recordAudit(event: AuditEvent, options: RecordOptions = {}): Promise<void> {
  validateEvent(event);
  const tenant = currentTenant();
  const transaction = namespace.get('transaction') as Transaction | null | undefined;
  if (!tenant || !transaction) {
    throw new AuditError(
      AuditErrorCode.NoTransaction,
      `cannot record audit event ${event.action}: no tenant transaction is open ` +
        '(call it inside withTenantTransaction or a tenantRoute handler)',
    );
  }
  const sequelize = (transaction as unknown as { sequelize: Sequelize }).sequelize;
  const viaFunction = await hasAppendFunction(sequelize, transaction, tenant.schema);
  await runAtCommit(
    sequelize,
    transaction,
    appendStatement(event, options, viaFunction),
    event.action,
  );
  sealAfterCommit(sequelize, transaction, tenant);
}

/** Transactions (the outermost of each) whose commit already hands its tenant to the sealer. */
const sealing = new WeakSet<Transaction>();

/** Once the transaction around the record commits, its tenant's sealer seals it soon. */
function sealAfterCommit(
  sequelize: Sequelize,
  transaction: Transaction,
  tenant: TenantContext,
): void {
  const root = outermostTransaction(transaction);
  if (sealing.has(root)) return;
  sealing.add(root);
  root.afterCommit(() => sealSoon(sequelize, tenant));
}

/**
 * Writes the record in a transaction of its own for the tenant (refused attempts: 403,
 * validation failures, failed logins). It never joins the caller's transaction, even one of the
 * same tenant, so the record stays when the caller's work rolls back. It takes a pooled
 * connection of its own while the caller may hold one: a pool of one connection would wait.
 */
export async function recordAuditSeparately(
  sequelize: Sequelize,
  tenant: TenantContext,
  event: AuditEvent,
  options: RecordOptions = {},
): Promise<void> {
  validateEvent(event);
  await withOwnTenantTransaction(sequelize, tenant, () => recordAudit(event, options));
}
