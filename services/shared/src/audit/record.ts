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
 * Appends one record inside `transaction`. The insert trigger (running as the table's owner)
 * locks the tenant's chain row, assigns the sequence number and previous hash and computes the
 * hash, so audited writes of one tenant take turns from here until their commit.
 */
async function insertRecord(
  sequelize: Sequelize,
  transaction: Transaction,
  event: AuditEvent,
  options: RecordOptions,
): Promise<void> {
  const context = currentRequestContext();
  const [userId, roles, system] = actorOf(event);
  const changes = normalizeChanges(event.changes);
  const details = normalizeDetails(event.details);
  try {
    await sequelize.query(
      `INSERT INTO audit_events (occurred_at, actor_user_id, actor_roles, actor_system,
         client_address, user_agent, request_id, action, resource_type, resource_id, outcome,
         changes, details)
       VALUES ($1::timestamptz, $2, $3::text[], $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb,
         $13::jsonb)`,
      {
        transaction,
        bind: [
          options.occurredAt?.toISOString() ?? null,
          userId,
          roles,
          system,
          boundedText(context?.clientIp, 64),
          boundedText(context?.userAgent, 256),
          boundedText(context?.reqId, 128),
          event.action,
          boundedText(event.resourceType, 100),
          boundedText(event.resourceId, 200),
          event.outcome,
          changes === null ? null : JSON.stringify(changes),
          details === null ? null : JSON.stringify(details),
        ],
      },
    );
  } catch (err) {
    throw new AuditError(
      AuditErrorCode.WriteFailed,
      `cannot record audit event ${event.action}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/**
 * Writes the record in the current tenant transaction (withTenantTransaction); throws when
 * there is none, and a failure rolls the change back: the error propagates out of the
 * transaction's function, and PostgreSQL has aborted the transaction in any case.
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
  await insertRecord(sequelize, transaction, event, options);
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
    await insertRecord(sequelize, transaction, event, options);
    await transaction.commit();
  } catch (err) {
    await transaction.rollback().catch(() => undefined);
    throw err;
  }
}
