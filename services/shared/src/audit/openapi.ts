import { z } from 'zod';
import {
  PROBLEM_SCHEMA,
  TENANT_HEADER_PARAMETER,
  jsonSchemaOf,
  problemResponse,
  queryParameters,
  type JsonSchema,
} from '../http/openapi.js';
import { AUDIT_OUTCOMES } from './event.js';
import { eventsQuery, exportQuery, verifyQuery } from './query.js';
import type { ChainProblemCode, ChainReport } from './verify.js';

const hash = z.string().regex(/^[0-9a-f]{64}$/);
const sequence = z.number().int().min(0);

/**
 * One audit record as formatEvent writes it (a line of the export, an item of a page). The time
 * is UTC with microseconds; a year before 1 or after 9999 has the expanded form (-000043).
 */
export const auditRecordSchema = z
  .strictObject({
    sequence: sequence.min(1).meta({ description: "The record's place in the tenant's chain" }),
    id: z.guid(),
    occurredAt: z
      .string()
      .regex(/^([+-][0-9]{6}|[0-9]{4})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$/),
    actor: z.strictObject({
      userId: z.string().nullable(),
      roles: z.array(z.string()),
      system: z.string().nullable().meta({ description: 'The component, for a system actor' }),
    }),
    clientAddress: z.string().nullable(),
    userAgent: z.string().nullable(),
    requestId: z.string().nullable(),
    action: z.string().meta({ description: 'Lowercase dotted: organization.updated' }),
    resourceType: z.string().nullable(),
    resourceId: z.string().nullable(),
    outcome: z.enum(AUDIT_OUTCOMES as [string, ...string[]]),
    changes: z
      .strictObject({
        before: z.record(z.string(), z.unknown()).optional(),
        after: z.record(z.string(), z.unknown()).optional(),
      })
      .nullable()
      .meta({ description: 'The fields that changed; secrets are redacted' }),
    details: z.record(z.string(), z.unknown()).nullable(),
    previousHash: hash,
    hash,
  })
  .meta({ description: 'One audit record' });

/** The body of GET /events: a page of records, newest first. */
export const auditEventsPageSchema = z.strictObject({
  items: z.array(auditRecordSchema),
  nextCursor: z
    .string()
    .nullable()
    .meta({ description: 'The `cursor` of the next (older) page; null on the last page' }),
});

const CHAIN_PROBLEM_CODES = [
  'MISSING_RECORDS',
  'BROKEN_LINK',
  'RECORD_ALTERED',
  'HEAD_MISMATCH',
  'RECORDS_BEHIND_CHECKPOINT',
] as const satisfies readonly ChainProblemCode[];

const chainPoint = z.strictObject({ sequence, hash, at: z.string().nullable() });

/** The body of GET /verify: verifyAuditChain's ChainReport. */
export const chainReportSchema = z.strictObject({
  valid: z.boolean(),
  checked: z.number().int().min(0).meta({ description: 'Records walked, up to the problem' }),
  checkpoint: chainPoint.meta({ description: 'Where the walk started: the retention checkpoint' }),
  head: chainPoint.meta({ description: "The chain's head as its chain row records it" }),
  problem: z
    .strictObject({
      code: z.enum(CHAIN_PROBLEM_CODES),
      sequence,
      id: z.string().optional(),
      detail: z.string(),
    })
    .optional()
    .meta({ description: 'The first place the chain breaks; absent when it is valid' }),
});

// The schema and the report must stay the same type: a field added to either fails to compile.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const reportMatches: Same<z.infer<typeof chainReportSchema>, ChainReport> = true;
void reportMatches;
// Every problem code is listed (the `satisfies` above checks that each listed one exists).
const codesComplete: Same<(typeof CHAIN_PROBLEM_CODES)[number], ChainProblemCode> = true;
void codesComplete;

const NO_STORE: JsonSchema = {
  'Cache-Control': {
    description: 'Always no-store: the records are for the caller only',
    schema: { const: 'no-store' },
  },
};

function problems(options: { longRead: boolean }): Record<string, JsonSchema> {
  return {
    400: problemResponse(
      'VALIDATION_FAILED: an invalid or unknown query parameter; `errors` lists every one',
      NO_STORE,
    ),
    401: problemResponse('UNAUTHENTICATED: no valid access token', NO_STORE),
    403: problemResponse(
      "X-Tenant-ID is missing or not the token's tenant, the tenant is not active, or the " +
        'caller is neither tenant_admin nor auditor',
      NO_STORE,
    ),
    405: problemResponse('METHOD_NOT_ALLOWED: only GET and HEAD', {
      ...NO_STORE,
      Allow: { schema: { const: 'GET, HEAD' } },
    }),
    503: problemResponse(
      options.longRead
        ? 'UNAVAILABLE: as many exports and verifications are running as the service runs at ' +
            'once, the audit table stayed locked, or the database is busy or out of reach; ' +
            'try again after Retry-After'
        : 'UNAVAILABLE: the audit table stayed locked, or the database is busy or out of ' +
            'reach; try again after Retry-After',
      { ...NO_STORE, 'Retry-After': { schema: { type: 'integer', minimum: 0 } } },
    ),
  };
}

function operation(
  spec: { operationId: string; summary: string; query: z.ZodType },
  ok: JsonSchema,
  longRead: boolean,
): JsonSchema {
  return {
    operationId: spec.operationId,
    summary: spec.summary,
    tags: ['audit'],
    'x-roles': ['tenant_admin', 'auditor'],
    security: [{ bearer: [] }],
    parameters: [TENANT_HEADER_PARAMETER, ...queryParameters(spec.query)],
    responses: { 200: ok, ...problems({ longRead }) },
  };
}

/** The OpenAPI parts of the audit API: its path items and the component schemas they refer to. */
export interface AuditOpenApi {
  paths: Record<string, Record<string, JsonSchema>>;
  /** For `components.schemas`: the Problem schema the error responses refer to. */
  schemas: Record<string, JsonSchema>;
}

/**
 * The OpenAPI 3.1 path items of the audit API (auditRouter) mounted under `prefix`, built from
 * the same zod schemas that validate its queries, for a service to merge into its document. The
 * operations need the `bearer` security scheme (HTTP bearer, JWT) of the document.
 */
export function auditOpenApi(prefix = '/audit'): AuditOpenApi {
  const events = operation(
    {
      operationId: 'listAuditEvents',
      summary: "Lists the tenant's audit records, newest first, a page at a time",
      query: eventsQuery,
    },
    {
      description: 'A page of records',
      headers: NO_STORE,
      content: { 'application/json': { schema: jsonSchemaOf(auditEventsPageSchema, 'output') } },
    },
    false,
  );
  const exported = operation(
    {
      operationId: 'exportAuditEvents',
      summary: "Exports the tenant's audit records, oldest first, as NDJSON",
      query: exportQuery,
    },
    {
      description:
        'Every matching record, one JSON object (the schema) per line, each line ending in a ' +
        'newline; an export cut off while streaming ends without one',
      headers: {
        ...NO_STORE,
        'Content-Disposition': { schema: { type: 'string' } },
      },
      content: { 'application/x-ndjson': { schema: jsonSchemaOf(auditRecordSchema, 'output') } },
    },
    true,
  );
  const verify = operation(
    {
      operationId: 'verifyAuditChain',
      summary: "Verifies the tenant's audit chain from the retention checkpoint to its head",
      query: verifyQuery,
    },
    {
      description: 'The chain report; `valid` is false and `problem` says where when it breaks',
      headers: NO_STORE,
      content: { 'application/json': { schema: jsonSchemaOf(chainReportSchema, 'output') } },
    },
    true,
  );
  return {
    paths: {
      [`${prefix}/events`]: { get: events },
      [`${prefix}/events/export`]: { get: exported },
      [`${prefix}/verify`]: { get: verify },
    },
    schemas: { Problem: PROBLEM_SCHEMA },
  };
}
