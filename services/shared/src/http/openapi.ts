import { z } from 'zod';

/** A JSON Schema or a part of an OpenAPI document. */
export type JsonSchema = Record<string, unknown>;

/**
 * The JSON Schema (draft 2020-12, as OpenAPI 3.1 takes it) of a zod schema, as a request gives
 * it (`input`: before defaults and coercion) or as a response carries it (`output`).
 */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' });
  delete json.$schema;
  return json;
}

/**
 * The members of an object schema (a query, a path or headers), each with whether it must be
 * given: a member that takes undefined (optional, or with a default) may be left out.
 */
export function membersOf(schema: z.ZodType | undefined): [string, z.ZodType, boolean][] {
  const shape = (schema as { shape?: Record<string, z.ZodType> } | undefined)?.shape ?? {};
  return Object.entries(shape).map(([name, member]) => [
    name,
    member,
    !member.safeParse(undefined).success,
  ]);
}

/** The OpenAPI query parameters of an object schema, one per member, in the schema's order. */
export function queryParameters(schema: z.ZodType): JsonSchema[] {
  return membersOf(schema).map(([name, member, required]) => {
    const { description, ...rest } = jsonSchemaOf(member, 'input');
    return {
      name,
      in: 'query',
      required,
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

/** The X-Tenant-ID header every tenant route takes. */
export const TENANT_HEADER_PARAMETER: JsonSchema = {
  name: 'X-Tenant-ID',
  in: 'header',
  required: true,
  description: "The tenant's slug (stamped by the gateway); must be the token's tenant",
  schema: { type: 'string' },
};

/**
 * The RFC 9457 problem document as problemDocument writes it, for `#/components/schemas/Problem`
 * of the services' OpenAPI documents.
 */
export const PROBLEM_SCHEMA: JsonSchema = {
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

/** A problem response of an operation, with the headers it carries. */
export function problemResponse(description: string, headers: JsonSchema = {}): JsonSchema {
  return {
    description,
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    content: {
      'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
    },
  };
}
