import type { Sequelize, Transaction } from 'sequelize';
import { currentRequestContext } from '../observability/context.js';
import { namespace } from '../tenancy/cls.js';
import { currentTenant, type TenantContext } from '../tenancy/context.js';
import { AuditError, AuditErrorCode } from './errors.js';
import {
  boundedText,
  normalizeChanges,
  normalizeDetails,
  validateEvent,
  type AuditEvent,
} from './event.js';
import { literal, runAtCommit } from './deferred.js';
import { openTenantTransaction } from './session.js';

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
    roles.slice(0, 20).map((role) => role.slice(0, 64)),
    boundedText(actor?.system, 128),
  ];
}

/**
 * The statement that appends the record: audit_append(...) with the values as literals, so that
 * it can travel in one simple query with the COMMIT (./deferred.ts). Its insert trigger (running
 * as the table's owner) locks the tenant's chain row, assigns the sequence number and previous
 * hash and computes the hash.
 */
function appendStatement(event: AuditEvent, options: RecordOptions): string {
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
  return `SELECT audit_append(${values.join(', ')})`;
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
  await runAtCommit(sequelize, transaction, appendStatement(event, options), event.action);
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
  const transaction = await openTenantTransaction(sequelize, tenant);
  try {
    await runAtCommit(sequelize, transaction, appendStatement(event, options), event.action);
    await transaction.commit();
  } catch (err) {
    await transaction.rollback().catch(() => undefined);
    throw err;
  }
}
