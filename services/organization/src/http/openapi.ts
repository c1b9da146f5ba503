import { z } from 'zod';
import { ROUTES, type RouteSpec } from './routes.js';

type JsonSchema = Record<string, unknown>;

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' });
  delete json.$schema;
  return json;
}

/** The members of an object schema, each with whether it may be left out. */
function membersOf(schema: z.ZodType | undefined): [string, z.ZodType, boolean][] {
  const shape = (schema as { shape?: Record<string, z.ZodType> } | undefined)?.shape ?? {};
  return Object.entries(shape).map(([name, member]) => [
    name,
    member,
    !member.safeParse(undefined).success,
  ]);
}

function parameters(route: RouteSpec): JsonSchema[] {
  const list: JsonSchema[] = [
    {
      name: 'X-Tenant-ID',
      in: 'header',
      required: true,
      description: "The tenant's slug (stamped by the gateway); must be the token's tenant",
      schema: { type: 'string' },
    },
  ];
  const add = (location: 'path' | 'query' | 'header', schema: z.ZodType | undefined): void => {
    for (const [name, member, required] of membersOf(schema)) {
      const json = schemaOf(member, 'input');
      const { description, ...rest } = json;
      list.push({
        name: location === 'header' ? headerName(name) : name,
        in: location,
        required: location === 'path' || required,
        ...(typeof description === 'string' ? { description } : {}),
        schema: rest,
      });
    }
  };
  add('path', route.inputs.path);
  add('query', route.inputs.query);
  add('header', route.inputs.headers);
  return list;
}

function headerName(lowercase: string): string {
  return lowercase
    .split('-')
    .map((part) => (part === 'id' ? 'ID' : part.charAt(0).toUpperCase() + part.slice(1)))
    .join('-');
}

const PROBLEM: JsonSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'code'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    code: { type: 'string', description: 'Stable error code' },
    requestId: { type: 'string' },
    errors: {
      type: 'array',
      description: 'For VALIDATION_FAILED: every invalid field',
      items: {
        type: 'object',
        properties: {
          in: { enum: ['path', 'query', 'header', 'body'] },
          field: { type: 'string' },
          code: { type: 'string' },
          message: { type: 'string' },
        },
      },
    },
  },
};

function operation(route: RouteSpec): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, spec] of Object.entries(route.responses)) {
    const success = Number(status) < 400;
    responses[status] = {
      description: spec.description,
      ...(spec.headers
        ? {
            headers: Object.fromEntries(
              spec.headers.map((name) => [name, { schema: { type: 'string' } }]),
            ),
          }
        : {}),
      ...(spec.schema
        ? { content: { 'application/json': { schema: schemaOf(spec.schema, 'output') } } }
        : success
          ? {}
          : {
              content: {
                'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
              },
            }),
    };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    tags: [route.tag],
    'x-roles':
      route.access === 'write'
        ? ['tenant_admin', 'manager']
        : ['tenant_admin', 'manager', 'member', 'auditor'],
    parameters: parameters(route),
    ...(route.inputs.body
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: schemaOf(route.inputs.body, 'input') } },
          },
        }
      : {}),
    responses,
  };
}

/** The OpenAPI 3.1 path of an Express path (`/org/sites/:id` → `/org/sites/{id}`). */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z]+)/g, '{$1}');
}

/**
 * The OpenAPI 3.1 document, built from the same route table and zod schemas that validate the
 * requests, so the two cannot drift apart.
 */
export function openApiDocument(): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of ROUTES) {
    const path = openApiPath(route.path);
    paths[path] ??= {};
    paths[path][route.method] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Vextrus organization service',
      version: '0.1.0',
      description:
        "Each tenant's organizations and their branches, divisions, projects and sites. " +
        'Errors are application/problem+json with a stable `code`.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { Problem: PROBLEM },
    },
  };
}
