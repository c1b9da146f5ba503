import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import { z } from 'zod';
import { commonErrors } from '../http/errors.js';
import { ACTION_PATTERN, AUDIT_OUTCOMES } from './event.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

const filterShape = {
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  /** A user id, or `system:<component>` for a system actor. */
  actor: z.string().min(1).max(135).optional(),
  action: z.string().max(100).regex(ACTION_PATTERN, 'must be lowercase dotted').optional(),
  resourceType: z.string().min(1).max(100).optional(),
  resourceId: z.string().min(1).max(200).optional(),
  outcome: z.enum(AUDIT_OUTCOMES as [string, ...string[]]).optional(),
};

function ordered<T extends { from?: string; to?: string }>(value: T, ctx: z.RefinementCtx): void {
  if (value.from && value.to && Date.parse(value.from) > Date.parse(value.to)) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: 'must not be before from' });
  }
}

export const exportQuery = z.strictObject(filterShape).superRefine(ordered);

export const eventsQuery = z
  .strictObject({
    ...filterShape,
    limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE),
    cursor: z
      .string()
      .max(40)
      .regex(/^[A-Za-z0-9_-]+$/)
      .optional(),
  })
  .superRefine(ordered);

export type AuditFilters = z.infer<typeof exportQuery>;

/** One invalid query parameter as the 400 problem lists it (as the services list fields). */
interface FieldError {
  in: 'query';
  field: string;
  code: string;
  message: string;
}

/** Parses the query string, or throws one VALIDATION_FAILED listing every invalid parameter. */
export function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.infer<S> {
  const result = schema.safeParse({ ...(query as object) });
  if (result.success) return result.data;
  const errors: FieldError[] = result.error.issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({
          in: 'query' as const,
          field: key,
          code: 'unknown_field',
          message: 'is not a known parameter',
        }))
      : [
          {
            in: 'query' as const,
            field: issue.path.map(String).join('.') || '(all)',
            code: issue.code,
            message: issue.message,
          },
        ],
  );
  throw commonErrors.VALIDATION_FAILED(
    `${errors.length} parameter(s) are invalid: ${errors.map((e) => e.field).join(', ')}`,
    { errors },
  );
}

/** The opaque cursor: the sequence number of the last record of the page. */
export function encodeCursor(sequence: string): string {
  return Buffer.from(`s${sequence}`).toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString();
  const match = /^s([1-9][0-9]{0,17})$/.exec(text);
  if (!match?.[1]) {
    throw commonErrors.VALIDATION_FAILED('The cursor is not one this API gave out', {
      errors: [
        { in: 'query', field: 'cursor', code: 'invalid_cursor', message: 'is not a valid cursor' },
      ],
    });
  }
  return match[1];
}

/** A record as the API shows it, built by PostgreSQL (so export rows are never parsed in JS). */
export const EVENT_JSON = `json_build_object(
  'sequence', e.sequence, 'id', e.id,
  'occurredAt', to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
  'actor', json_build_object('userId', e.actor_user_id, 'roles', e.actor_roles,
                             'system', e.actor_system),
  'clientAddress', e.client_address, 'userAgent', e.user_agent, 'requestId', e.request_id,
  'action', e.action, 'resourceType', e.resource_type, 'resourceId', e.resource_id,
  'outcome', e.outcome, 'changes', e.changes, 'details', e.details,
  'previousHash', encode(e.previous_hash, 'hex'), 'hash', encode(e.hash, 'hex'))`;

/** A WHERE clause over `audit_events e` and its bind values, numbered from $1. */
export interface Condition {
  where: string;
  bind: unknown[];
}

interface Bounds {
  lo: string | null;
  hi: string | null;
}

/**
 * The conditions of the filters. A time range becomes a range of sequence numbers (two index
 * probes): time never runs backwards along the chain (the insert trigger sees to it), so the
 * records of a time range are a run of sequence numbers, and every query walks the primary key
 * or an index that ends with the sequence. Undefined when the range holds no record.
 */
export async function filterCondition(
  sequelize: Sequelize,
  transaction: Transaction,
  filters: AuditFilters,
): Promise<Condition | undefined> {
  const parts = ['e.tenant_id = platform.current_tenant_id()'];
  const bind: unknown[] = [];
  const add = (sql: (n: string) => string, value: unknown): void => {
    bind.push(value);
    parts.push(sql(`$${bind.length}`));
  };
  if (filters.from !== undefined || filters.to !== undefined) {
    const [bounds] = await sequelize.query<Bounds>(
      `SELECT
         CASE WHEN $1::timestamptz IS NULL THEN '0' ELSE
           (SELECT sequence::text FROM audit_events
             WHERE tenant_id = platform.current_tenant_id() AND occurred_at >= $1
             ORDER BY occurred_at, sequence LIMIT 1) END AS lo,
         CASE WHEN $2::timestamptz IS NULL THEN '9223372036854775807' ELSE
           (SELECT sequence::text FROM audit_events
             WHERE tenant_id = platform.current_tenant_id() AND occurred_at < $2
             ORDER BY occurred_at DESC, sequence DESC LIMIT 1) END AS hi`,
      { transaction, type: QueryTypes.SELECT, bind: [filters.from ?? null, filters.to ?? null] },
    );
    if (!bounds?.lo || !bounds.hi || BigInt(bounds.lo) > BigInt(bounds.hi)) return undefined;
    add((n) => `e.sequence >= ${n}`, bounds.lo);
    add((n) => `e.sequence <= ${n}`, bounds.hi);
  }
  if (filters.actor !== undefined) {
    if (filters.actor.startsWith('system:')) {
      add((n) => `e.actor_system = ${n}`, filters.actor.slice('system:'.length));
    } else add((n) => `e.actor_user_id = ${n}`, filters.actor);
  }
  if (filters.action !== undefined) add((n) => `e.action = ${n}`, filters.action);
  if (filters.resourceType !== undefined) {
    add((n) => `e.resource_type = ${n}`, filters.resourceType);
  }
  if (filters.resourceId !== undefined) add((n) => `e.resource_id = ${n}`, filters.resourceId);
  if (filters.outcome !== undefined) add((n) => `e.outcome = ${n}`, filters.outcome);
  return { where: parts.join(' AND '), bind };
}
