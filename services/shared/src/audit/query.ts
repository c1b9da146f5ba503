import { QueryTypes, type Sequelize, type Transaction } from 'sequelize';
import pg from 'pg';
import { z } from 'zod';
import { commonErrors } from '../http/errors.js';
import { ACTION_PATTERN, AUDIT_OUTCOMES } from './event.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

/**
 * An ISO 8601 time with an offset that PostgreSQL's timestamptz also takes: it has no year 0000
 * (ISO's 1 BC), no offset beyond ±15:59 and no more than nanoseconds (PostgreSQL cannot parse a
 * time of more than about 150 characters), which zod's format allows, and PostgreSQL refused
 * them with an error that became a 500.
 */
const instant = z.iso
  .datetime({ offset: true })
  .refine((value) => !value.startsWith('0000'), 'must be in year 0001 or later')
  .refine((value) => !/\.[0-9]{10}/.test(value), 'must have at most 9 decimals of a second')
  .refine(
    (value) => !/[+-](1[6-9]|2[0-9]):[0-9]{2}$/.test(value),
    'must have an offset within ±15:59',
  );

/**
 * A text filter of 1 to `max` characters. PostgreSQL text cannot hold NUL, which made the query
 * fail with a 500; records never hold it either (it is dropped when they are written), so such
 * a filter is refused.
 */
function filterText(max: number) {
  return z
    .string()
    .min(1)
    .max(max)
    .refine((value) => !value.includes('\u0000'), 'must not contain NUL characters');
}

// The descriptions are those of the OpenAPI document's parameters (see openapi.ts).
const filterShape = {
  from: instant.optional().meta({ description: 'Records at or after this time (ISO 8601)' }),
  to: instant.optional().meta({ description: 'Records before this time (ISO 8601, exclusive)' }),
  actor: filterText(135)
    .optional()
    .meta({ description: 'A user id, or `system:<component>` for a system actor' }),
  action: z
    .string()
    .max(100)
    .regex(ACTION_PATTERN, 'must be lowercase dotted')
    .optional()
    .meta({ description: 'Lowercase dotted: organization.updated' }),
  resourceType: filterText(100).optional(),
  resourceId: filterText(200).optional(),
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
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(MAX_PAGE_SIZE)
      .default(DEFAULT_PAGE_SIZE)
      .meta({ description: 'Records per page' }),
    cursor: z
      .string()
      .max(40)
      .regex(/^[A-Za-z0-9_-]+$/)
      .optional()
      .meta({ description: 'The `nextCursor` of the previous page' }),
  })
  .superRefine(ordered);

/** /verify takes no parameters; any given is refused as unknown, as on the other paths. */
export const verifyQuery = z.strictObject({});

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

/**
 * The columns of a record over `audit_events e`, in the order formatEvent reads them, for a
 * query whose rows come back as unparsed text (transactionTextRows). The time comes as
 * microseconds since the epoch, which neither DateStyle nor TimeZone of the session changes.
 */
export const EVENT_COLUMNS = `e.sequence, e.id,
  (extract(epoch FROM e.occurred_at) * 1000000)::bigint,
  e.actor_user_id, e.actor_roles, e.actor_system, e.client_address, e.user_agent, e.request_id,
  e.action, e.resource_type, e.resource_id, e.outcome, e.changes, e.details,
  encode(e.previous_hash, 'hex'), encode(e.hash, 'hex')`;

/** pg's parser of a text[] value (type OID 1009) from its text output: {a,"b c"}. */
const parseTextArray = pg.types.getTypeParser(
  1009 as Parameters<typeof pg.types.getTypeParser>[0],
) as (value: string) => string[];

/** JSON arrays of the role lists seen lately (a tenant has few), by their text output. */
const rolesJson = new Map<string, string>();

/** A text[] value's text output ({a,"b c"}) as a JSON array. */
function rolesOf(value: string): string {
  let json = rolesJson.get(value);
  if (json === undefined) {
    json = JSON.stringify(parseTextArray(value));
    if (rolesJson.size >= 256) rolesJson.clear();
    rolesJson.set(value, json);
  }
  return json;
}

/** Characters JSON must escape in a string (text from PostgreSQL has no lone surrogates). */
// eslint-disable-next-line no-control-regex -- the control characters are what it looks for
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

/** A JSON string, or null. */
function str(value: string | null | undefined): string {
  if (value == null) return 'null';
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

/**
 * Microseconds since the epoch as ISO 8601 in UTC with six decimals: 2026-12-04T21:14:11.000123Z;
 * years before 1 in the expanded form of ECMAScript (astronomical numbering: 44 BC is -000043).
 * Records can be dated back to 4713 BC (an import may date a tenant's first records): beyond
 * 2^53 microseconds (before 1685) a Number no longer holds every microsecond, so those go
 * through BigInt.
 */
export function isoMicros(micros: string): string {
  const us = Number(micros);
  if (Number.isSafeInteger(us)) {
    const ms = Math.floor(us / 1000);
    return `${new Date(ms).toISOString().slice(0, 23)}${String(us - ms * 1000).padStart(3, '0')}Z`;
  }
  const exact = BigInt(micros);
  let ms = exact / 1000n;
  if (ms * 1000n > exact) ms -= 1n;
  const iso = new Date(Number(ms)).toISOString();
  return `${iso.slice(0, -1)}${String(exact - ms * 1000n).padStart(3, '0')}Z`;
}

/**
 * One record (a row of EVENT_COLUMNS as text) as the API's JSON object, written out in
 * JavaScript: PostgreSQL's json_build_object looks up every value's output function again for
 * every row, which made a day of 10,000 records cost ~10 times the index scan that finds them.
 * changes and details are jsonb, whose text output is JSON already.
 */
export function formatEvent(row: readonly (string | null)[]): string {
  const roles = row[4] == null ? 'null' : rolesOf(row[4]);
  return (
    // sequence (digits), id (a uuid), the time (ISO 8601) and the hashes (hex) need no escaping.
    `{"sequence":${row[0]},"id":"${row[1]}","occurredAt":"${isoMicros(row[2] ?? '0')}",` +
    `"actor":{"userId":${str(row[3])},"roles":${roles},"system":${str(row[5])}},` +
    `"clientAddress":${str(row[6])},"userAgent":${str(row[7])},"requestId":${str(row[8])},` +
    `"action":${str(row[9])},"resourceType":${str(row[10])},"resourceId":${str(row[11])},` +
    `"outcome":${str(row[12])},"changes":${row[13] ?? 'null'},"details":${row[14] ?? 'null'},` +
    `"previousHash":"${row[15]}","hash":"${row[16]}"}`
  );
}

/** Rows of EVENT_COLUMNS as NDJSON: one formatEvent line each, every line ending in \n. */
export function formatEvents(rows: readonly (readonly (string | null)[])[]): string {
  let lines = '';
  for (const row of rows) lines += `${formatEvent(row)}\n`;
  return lines;
}

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
