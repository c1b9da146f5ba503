import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { ConnectionAcquireTimeoutError, ConnectionError, DatabaseError } from 'sequelize';
import { AppError, commonErrors } from './errors.js';
import { currentRequestContext } from '../observability/context.js';
import { sessionEnded } from '../tenancy/errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * The RFC 9457 problem document of an AppError, as JSON text: for Express (sendProblem) and for
 * answers written without it (refused requests on the raw socket, the operator's probe server).
 */
export function problemDocument(error: AppError, instance?: string): string {
  return JSON.stringify({
    type: `urn:vextrus:problem:${error.code.toLowerCase().replaceAll('_', '-')}`,
    title: error.kind.title,
    status: error.status,
    detail: error.message,
    instance,
    code: error.code,
    requestId: currentRequestContext()?.reqId,
    ...error.extras,
  });
}

/** Writes an AppError as an RFC 9457 problem document. */
export function sendProblem(res: Response, error: AppError, instance: string): void {
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  res.status(error.status).type(PROBLEM_CONTENT_TYPE).send(problemDocument(error, instance));
}

/** 503 UNAVAILABLE with Retry-After: nothing was done, and asking again later may work. */
export function unavailable(detail: string, retryAfterSeconds = 5): AppError {
  return commonErrors.UNAVAILABLE(
    detail,
    {},
    { headers: { 'Retry-After': String(retryAfterSeconds) } },
  );
}

/** Errors thrown by Express's body parser carry a `type`; map each to a stable code. */
function fromBodyParser(err: { type?: unknown; limit?: unknown }): AppError | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return commonErrors.MALFORMED_JSON('The request body could not be parsed as a JSON object');
    case 'entity.too.large':
      return commonErrors.PAYLOAD_TOO_LARGE(`The request body exceeds ${String(err.limit)} bytes`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return commonErrors.UNSUPPORTED_MEDIA_TYPE('Send the body as UTF-8 JSON');
    case 'request.aborted':
    case 'request.size.invalid':
      return commonErrors.MALFORMED_JSON('The request body was incomplete');
    default:
      return undefined;
  }
}

/**
 * Express's router cannot decode a path parameter that is not valid percent-encoding
 * (`/users/%ZZ`): it throws a URIError marked with status 400 before any handler runs.
 */
function fromRouter(err: unknown): AppError | undefined {
  if (!(err instanceof URIError) || (err as { status?: unknown }).status !== 400) return undefined;
  return commonErrors.VALIDATION_FAILED('A path segment is not valid percent-encoding');
}

/**
 * SQLSTATEs of a transaction that lost to concurrent work and was rolled back whole: a lock not
 * granted within lock_timeout, a serialization failure, a deadlock. Asking again may work.
 */
const TRANSIENT: Record<string, string> = {
  '55P03': 'Data this request needs is locked by other work; try again shortly',
  '40001': 'This request conflicted with concurrent changes; try again',
  '40P01': 'This request conflicted with concurrent changes; try again',
};

/**
 * The SQLSTATE of a database error, or of the database error that caused `err` (an audit
 * record that could not be written because its transaction lost to concurrent work is such a
 * failure too: the change was rolled back with it).
 */
function databaseCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 3 && current instanceof Error; depth++) {
    if (current instanceof DatabaseError) {
      const code = (current as { parent?: { code?: unknown } }).parent?.code;
      return typeof code === 'string' ? code : undefined;
    }
    current = current.cause;
  }
  return undefined;
}

/**
 * The connection error that is `err` or caused it (the audit module wraps the failures of a
 * verification in an AuditError of its own).
 */
function connectionError(err: unknown): ConnectionError | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 3 && current instanceof Error; depth++) {
    if (current instanceof ConnectionError) return current;
    current = current.cause;
  }
  return undefined;
}

/**
 * The database out of reach: every pooled connection busy for longer than the pool waits
 * (ConnectionAcquireTimeoutError), PostgreSQL refusing or dropping connections or ending a
 * session under a query (sessionEnded), or the transaction lost to concurrent work (TRANSIENT),
 * whether thrown as is or as the cause of another error. Nothing was done, and asking again
 * later may work: 503 with Retry-After, not a bare 500.
 */
function fromDatabase(err: unknown): AppError | undefined {
  const code = databaseCode(err);
  const transient = TRANSIENT[code ?? ''];
  if (transient) return unavailable(transient);
  if (sessionEnded(code)) return unavailable('The database connection was lost; try again shortly');
  const connection = connectionError(err);
  if (connection instanceof ConnectionAcquireTimeoutError) {
    return unavailable('Every database connection of this service is busy; try again shortly');
  }
  if (connection) return unavailable('The database cannot be reached; try again shortly');
  return undefined;
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(commonErrors.ROUTE_NOT_FOUND(`No route answers ${req.method} ${req.path}`));
};

/**
 * The one place that turns errors into responses. Client errors keep their code and detail;
 * anything unexpected is logged with its stack and answered with a bare 500.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    const known =
      err instanceof AppError
        ? err
        : typeof err === 'object' && err !== null
          ? (fromBodyParser(err) ?? fromRouter(err) ?? fromDatabase(err))
          : undefined;
    if (known) {
      if (known.status >= 500) logger.error({ err }, 'request failed');
      return sendProblem(res, known, req.originalUrl);
    }
    logger.error({ err }, 'unexpected error');
    sendProblem(
      res,
      commonErrors.INTERNAL('An unexpected error occurred; quote the request id when reporting it'),
      req.originalUrl,
    );
  };
}
