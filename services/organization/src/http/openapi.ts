import {
  PROBLEM_SCHEMA,
  TENANT_HEADER_PARAMETER,
  auditOpenApi,
  jsonSchemaOf as schemaOf,
  membersOf,
  type JsonSchema,
} from '@vextrus/shared';
import type { z } from 'zod';
import { ROUTES, type RouteSpec } from './routes.js';

function parameters(route: RouteSpec): JsonSchema[] {
  const list: JsonSchema[] = [TENANT_HEADER_PARAMETER];
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
  // The audit API is mounted under /audit of this service (see service.ts): its operations come
  // from the shared audit module, built from the zod schemas its router validates with.
  const audit = auditOpenApi('/audit');
  return {
    openapi: '3.1.0',
    info: {
      title: 'Vextrus organization service',
      version: '0.1.0',
      description:
        "Each tenant's organizations and their branches, divisions, projects and sites, and " +
        "the tenant's audit log (/audit, for tenant_admin and auditor). " +
        'Errors are application/problem+json with a stable `code`.',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    paths: { ...paths, ...audit.paths },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: { ...audit.schemas, Problem: PROBLEM_SCHEMA },
    },
  };
}
