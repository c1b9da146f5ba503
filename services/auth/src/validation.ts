import type { Request } from 'express';
import type { z } from 'zod';
import { errors } from './errors.js';

/** Parses the JSON body, or throws VALIDATION_FAILED listing each invalid field. */
export function parseBody<T extends z.ZodType>(schema: T, req: Request): z.infer<T> {
  const result = schema.safeParse(req.body ?? {});
  if (result.success) return result.data;
  const fields = result.error.issues.map((issue) => ({
    field: issue.path.join('.') || '(body)',
    message: issue.message,
  }));
  throw errors.VALIDATION_FAILED('Correct the listed fields and send the request again', {
    errors: fields,
  });
}

/** The tenant a request without a token names: the gateway's X-Tenant-ID. */
export function addressedTenant(req: Request): string {
  const slug = req.get('x-tenant-id');
  if (!slug) throw errors.TENANT_REQUIRED();
  return slug;
}

/** The client's address: X-Forwarded-For only through TRUST_PROXY_HOPS (Express's req.ip). */
export function clientAddress(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}
