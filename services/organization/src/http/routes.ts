import type { Request } from 'express';
import type { Reply } from '@vextrus/shared';
import { z } from 'zod';
import type { Sql } from '../data/sql.js';
import { ENTITIES, type Entity } from '../domain/entities.js';
import * as f from '../domain/fields.js';
import {
  archiveRecord,
  checkContext,
  createRecord,
  deleteRecord,
  getRecord,
  listRecords,
  restoreRecord,
  updateRecord,
  type OperationContext,
} from '../domain/operations.js';
import type { Inputs, InputSchemas } from './validation.js';

/** Who may call a route: readers are every role, writers administrators and managers. */
export type Access = 'read' | 'write';

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** Response headers the route sets. */
  headers?: readonly string[];
}

/** One route: its HTTP shape (which also feeds /openapi.json) and what it does. */
export interface RouteSpec {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** Express path with `:name` parameters. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  access: Access;
  inputs: InputSchemas;
  responses: Record<number, ResponseSpec>;
  handle: (context: OperationContext, inputs: Inputs, req: Request) => Promise<Reply>;
}

/** Headers every tenant route reads besides the token and X-Tenant-ID. */
const contextHeaders = {
  'x-project-id': f.id.optional().meta({
    description: 'A project of the tenant; other projects and their sites are not found',
  }),
  'x-site-id': f.id.optional().meta({
    description:
      'A site of the tenant (of X-Project-ID when both are given); other sites, and projects ' +
      'other than its own, are not found',
  }),
};

const ifMatch = z
  .string()
  .regex(/^"\d{1,9}"$/, { error: 'must be the ETag of the record, such as "3"' })
  .optional()
  .meta({ description: 'The ETag (version) the change is based on' });

const idempotencyKey = z
  .string()
  .regex(/^[\x21-\x7e]{1,200}$/, { error: 'must be 1-200 visible ASCII characters' })
  .optional()
  .meta({ description: 'Makes a retried create return the first result instead of a duplicate' });

const headers = z.object(contextHeaders);
const headersWithIfMatch = z.object({ ...contextHeaders, 'if-match': ifMatch });
const headersWithKey = z.object({ ...contextHeaders, 'idempotency-key': idempotencyKey });

const pathId = z.strictObject({ id: f.id });

/** A digit string within a range, as query parameters arrive. */
const limit = z
  .string()
  .regex(/^\d{1,3}$/, { error: 'must be a whole number from 1 to 100' })
  .transform(Number)
  .pipe(z.int().min(1).max(100))
  .optional()
  .meta({ description: 'Page size, 1-100 (default 25)' });

function listQuery(entity: Entity): z.ZodType {
  const sorts = Object.keys(entity.sorts).flatMap((key) => [key, `-${key}`]) as [
    string,
    ...string[],
  ];
  const ids = Object.fromEntries(
    Object.keys(entity.idFilters).map((filter) => [filter, f.id.optional()]),
  );
  return z.strictObject({
    limit,
    cursor: z.string().min(1).max(1000).optional().meta({
      description: 'nextCursor of the previous page (same sort)',
    }),
    sort: z.enum(sorts).optional().meta({
      description: 'Sort key, "-" first for descending; ties are broken by id (default code)',
    }),
    status: z.enum(entity.statuses).optional(),
    code: f.code.optional().meta({ description: 'Exact code' }),
    name: z
      .string()
      .min(1)
      .max(100)
      .refine(f.withoutNul, { error: 'must not contain NUL characters' })
      .optional()
      .meta({
        description: 'Part of the name, case-insensitive',
      }),
    ...ids,
  });
}

function pageOf(entity: Entity): z.ZodType {
  return z.object({ items: z.array(entity.response), nextCursor: z.string().nullable() });
}

function archiveResult(entity: Entity): z.ZodType {
  return z.object({
    item: entity.response,
    cascaded: z.record(z.string(), z.int()).meta({
      description: 'How many records of each kind were archived or restored with it',
    }),
  });
}

const problem = (description: string): ResponseSpec => ({ description });

const readProblems: Record<number, ResponseSpec> = {
  400: problem('Invalid input; `errors` lists every invalid field'),
  401: problem('No valid access token'),
  403: problem('Wrong tenant or missing role'),
  404: problem('No such record (also for ids of other tenants)'),
};

function routesOf(entity: Entity): RouteSpec[] {
  const base = `/org/${entity.plural}`;
  const tag = entity.plural;
  const title = entity.name;
  const routes: RouteSpec[] = [];
  const parent = entity.parent ? ENTITIES[entity.parent.entity] : undefined;
  const collectionPath = parent ? `/org/${parent.plural}/:parentId/${entity.plural}` : base;
  const parentPath = z.strictObject({ parentId: f.id });
  const capital = title.charAt(0).toUpperCase() + title.slice(1);
  const plural = entity.plural.charAt(0).toUpperCase() + entity.plural.slice(1);

  routes.push({
    method: 'get',
    path: base,
    operationId: `list${plural}`,
    summary: `Lists the tenant's ${entity.plural}, a page at a time`,
    tag,
    access: 'read',
    inputs: { query: listQuery(entity), headers },
    responses: { 200: { description: 'A page', schema: pageOf(entity) }, ...readProblems },
    handle: (context, inputs) => listRecords(context, entity, inputs.query),
  });
  if (parent) {
    routes.push({
      method: 'get',
      path: collectionPath,
      operationId: `list${plural}Of${parent.name.charAt(0).toUpperCase()}${parent.name.slice(1)}`,
      summary: `Lists the ${entity.plural} of one ${parent.name}`,
      tag,
      access: 'read',
      inputs: { path: parentPath, query: listQuery(entity), headers },
      responses: { 200: { description: 'A page', schema: pageOf(entity) }, ...readProblems },
      handle: (context, inputs) => listRecords(context, entity, inputs.query, inputs.path.parentId),
    });
  }
  routes.push({
    method: 'post',
    path: collectionPath,
    operationId: `create${capital}`,
    summary: parent ? `Creates a ${title} of a ${parent.name}` : `Creates an ${title}`,
    tag,
    access: 'write',
    inputs: {
      ...(parent ? { path: parentPath } : {}),
      headers: headersWithKey,
      body: entity.create,
    },
    responses: {
      201: { description: 'Created', schema: entity.response, headers: ['ETag', 'Location'] },
      ...readProblems,
      409: problem('The code is taken, or the parent is archived'),
      422: problem('The Idempotency-Key was used for another request'),
    },
    handle: (context, inputs) =>
      createRecord(context, entity, {
        parentId: inputs.path.parentId,
        values: inputs.body,
        idempotencyKey: inputs.headers['idempotency-key'] as string | undefined,
      }),
  });
  routes.push({
    method: 'get',
    path: `${base}/:id`,
    operationId: `get${capital}`,
    summary: `Reads one ${title}`,
    tag,
    access: 'read',
    inputs: { path: pathId, headers },
    responses: {
      200: { description: 'The record', schema: entity.response, headers: ['ETag'] },
      ...readProblems,
    },
    handle: (context, inputs) => getRecord(context, entity, inputs.path.id as string),
  });
  routes.push({
    method: 'patch',
    path: `${base}/:id`,
    operationId: `update${capital}`,
    summary: `Changes fields of one ${title}; needs If-Match`,
    tag,
    access: 'write',
    inputs: { path: pathId, headers: headersWithIfMatch, body: entity.update },
    responses: {
      200: { description: 'The changed record', schema: entity.response, headers: ['ETag'] },
      ...readProblems,
      409: problem('The code is taken, the record is archived, or the move is refused'),
      412: problem('If-Match names an older version'),
      428: problem('If-Match is missing'),
    },
    handle: (context, inputs) =>
      updateRecord(
        context,
        entity,
        inputs.path.id as string,
        inputs.headers['if-match'] as string | undefined,
        inputs.body,
      ),
  });
  for (const action of ['archive', 'restore'] as const) {
    routes.push({
      method: 'post',
      path: `${base}/:id/${action}`,
      operationId: `${action}${capital}`,
      summary:
        action === 'archive'
          ? `Archives one ${title} and its active descendants`
          : `Restores one ${title} and what its archiving archived`,
      tag,
      access: 'write',
      inputs: { path: pathId, headers: headersWithIfMatch },
      responses: {
        200: { description: 'The record', schema: archiveResult(entity), headers: ['ETag'] },
        ...readProblems,
        409: problem('Already in that state, or the parent is archived'),
        412: problem('If-Match names an older version'),
      },
      handle: (context, inputs) =>
        (action === 'archive' ? archiveRecord : restoreRecord)(
          context,
          entity,
          inputs.path.id as string,
          inputs.headers['if-match'] as string | undefined,
        ),
    });
  }
  routes.push({
    method: 'delete',
    path: `${base}/:id`,
    operationId: `delete${capital}`,
    summary: `Deletes one ${title} when nothing depends on it`,
    tag,
    access: 'write',
    inputs: { path: pathId, headers: headersWithIfMatch },
    responses: {
      204: { description: 'Deleted' },
      ...readProblems,
      409: problem('Records depend on it; `dependents` counts them by kind'),
      412: problem('If-Match names an older version'),
    },
    handle: (context, inputs) =>
      deleteRecord(
        context,
        entity,
        inputs.path.id as string,
        inputs.headers['if-match'] as string | undefined,
      ),
  });
  return routes;
}

/** Every tenant route of the service, in the order they are mounted. */
export const ROUTES: readonly RouteSpec[] = Object.values(ENTITIES).flatMap(routesOf);

/** Runs a route's operation with the context headers checked first. */
export async function runOperation(
  route: RouteSpec,
  context: Omit<OperationContext, 'sql'> & { sql: Sql },
  inputs: Inputs,
  req: Request,
): Promise<Reply> {
  return route.handle(await checkContext(context), inputs, req);
}
