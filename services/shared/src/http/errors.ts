/** One kind of error a client can see: a stable code, an HTTP status and a short title. */
export interface ErrorKind {
  status: number;
  title: string;
}

export interface ProblemExtras {
  /** Extra members of the problem+json body, such as the list of invalid fields. */
  [member: string]: unknown;
}

/**
 * An error meant for the client. The central handler renders it as application/problem+json
 * (RFC 9457) with its stable code; anything that is not an AppError becomes a 500 whose details
 * stay in the log.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly kind: ErrorKind,
    detail: string,
    readonly extras: ProblemExtras = {},
    options?: ErrorOptions & { headers?: Record<string, string> },
  ) {
    super(detail, options);
    this.name = 'AppError';
    this.headers = options?.headers ?? {};
  }

  readonly headers: Record<string, string>;

  get status(): number {
    return this.kind.status;
  }
}

export type ErrorFactory = (
  detail?: string,
  extras?: ProblemExtras,
  options?: ErrorOptions & { headers?: Record<string, string> },
) => AppError;

export type ErrorCatalogue<T extends Record<string, ErrorKind>> = {
  [K in keyof T]: ErrorFactory;
} & {
  readonly kinds: T;
};

/** Builds a service's catalogue: one factory per stable code. */
export function defineErrors<const T extends Record<string, ErrorKind>>(
  kinds: T,
): ErrorCatalogue<T> {
  const catalogue: Record<string, unknown> = { kinds };
  for (const [code, kind] of Object.entries(kinds)) {
    const factory: ErrorFactory = (detail, extras, options) =>
      new AppError(code, kind, detail ?? kind.title, extras, options);
    catalogue[code] = factory;
  }
  return catalogue as ErrorCatalogue<T>;
}

/** Errors the HTTP bootstrap itself raises; every service catalogue includes them. */
export const commonErrorKinds = {
  MALFORMED_JSON: { status: 400, title: 'The request body is not valid JSON' },
  MALFORMED_REQUEST: { status: 400, title: 'The request is not valid HTTP' },
  HEADERS_TOO_LARGE: { status: 431, title: 'The request line or headers are too large' },
  REQUEST_TIMEOUT: { status: 408, title: 'The request did not arrive in time' },
  VALIDATION_FAILED: { status: 400, title: 'The request has invalid fields' },
  UNAUTHENTICATED: { status: 401, title: 'A valid access token is required' },
  FORBIDDEN: { status: 403, title: 'The caller may not do this' },
  ROUTE_NOT_FOUND: { status: 404, title: 'No such route' },
  NOT_FOUND: { status: 404, title: 'No such resource' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'The route does not accept this method' },
  CONFLICT: { status: 409, title: 'The request conflicts with the current state' },
  PRECONDITION_FAILED: { status: 412, title: 'The resource changed since it was read' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'The request body has an unsupported type' },
  PRECONDITION_REQUIRED: { status: 428, title: 'The request must be conditional' },
  INTERNAL: { status: 500, title: 'An unexpected error occurred' },
  UNAVAILABLE: { status: 503, title: 'The service is not available right now' },
} as const satisfies Record<string, ErrorKind>;

export const commonErrors = defineErrors(commonErrorKinds);
