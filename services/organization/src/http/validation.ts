import type { Request } from 'express';
import type { z } from 'zod';
import { errors } from '../errors.js';

/** Where an invalid value was found. */
export type Location = 'path' | 'query' | 'header' | 'body';

/** One invalid field as the 400 problem lists it. */
export interface FieldError {
  in: Location;
  /** Dotted path of the field (`address.city`), or the parameter or header name. */
  field: string;
  code: string;
  message: string;
}

/** The schemas of a route's inputs; headers are looked up by their lowercase names. */
export interface InputSchemas {
  path?: z.ZodType;
  query?: z.ZodType;
  headers?: z.ZodType;
  body?: z.ZodType;
}

/** A route's inputs once validated. */
export interface Inputs {
  path: Record<string, string>;
  query: Record<string, unknown>;
  headers: Record<string, unknown>;
  body: Record<string, unknown>;
}

function fieldErrors(location: Location, error: z.ZodError): FieldError[] {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String);
      // An unknown key is reported on the key itself, so the client sees which one to remove.
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => ({
          in: location,
          field: [...path, key].join('.'),
          code: 'unknown_field',
          message: 'is not a known field',
        }));
      }
      return [
        {
          in: location,
          field: path.join('.') || (location === 'body' ? '(body)' : '(all)'),
          code: issue.code,
          message: issue.message,
        },
      ];
    })
    .flat();
}

/** The VALIDATION_FAILED problem for the issues of one location. */
export function validationProblem(location: Location, error: z.ZodError): Error {
  const problems = fieldErrors(location, error);
  return errors.VALIDATION_FAILED(
    `${problems.length} field(s) are invalid: ${problems.map((p) => p.field).join(', ')}`,
    { errors: problems },
  );
}

/** The headers a schema names, by lowercase name, as strings (repeated ones joined by Node). */
function pickHeaders(req: Request, schema: z.ZodType | undefined): Record<string, unknown> {
  const shape = (schema as { shape?: Record<string, unknown> } | undefined)?.shape ?? {};
  const picked: Record<string, unknown> = {};
  for (const name of Object.keys(shape)) {
    const value = req.headers[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

/**
 * Validates every input of a request at once and throws one VALIDATION_FAILED problem that lists
 * every invalid field, so that a client can fix them all in one round.
 */
export function validate(req: Request, schemas: InputSchemas): Inputs {
  const problems: FieldError[] = [];
  const parse = (location: Location, schema: z.ZodType | undefined, value: unknown): unknown => {
    if (!schema) return {};
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    problems.push(...fieldErrors(location, result.error));
    return {};
  };
  const inputs = {
    path: parse('path', schemas.path, req.params),
    query: parse('query', schemas.query, { ...(req.query as object) }),
    headers: parse('header', schemas.headers, pickHeaders(req, schemas.headers)),
    body: parse('body', schemas.body, req.body),
  } as Inputs;
  if (problems.length > 0) {
    throw errors.VALIDATION_FAILED(
      `${problems.length} field(s) are invalid: ${problems.map((p) => p.field).join(', ')}`,
      { errors: problems },
    );
  }
  return inputs;
}
