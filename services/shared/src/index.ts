export * from './config/index.js';
export { AppError, defineErrors, commonErrors, commonErrorKinds } from './http/errors.js';
export type { ErrorKind, ErrorCatalogue, ErrorFactory, ProblemExtras } from './http/errors.js';
export { sendProblem, problemDocument, PROBLEM_CONTENT_TYPE } from './http/problem.js';
export {
  PROBLEM_SCHEMA,
  TENANT_HEADER_PARAMETER,
  jsonSchemaOf,
  membersOf,
  problemResponse,
  queryParameters,
} from './http/openapi.js';
export type { JsonSchema } from './http/openapi.js';
export { Health } from './http/health.js';
export type { ReadinessCheck } from './http/health.js';
export { createHttpApp } from './http/app.js';
export type { HttpAppOptions } from './http/app.js';
export { createLogger, REDACTED_PATHS } from './observability/logger.js';
export type { Logger, LoggerOptions } from './observability/logger.js';
export { currentRequestContext, runWithRequestContext } from './observability/context.js';
export type { RequestContext } from './observability/context.js';
export { createHttpMetrics, UNMATCHED_ROUTE } from './observability/metrics.js';
export type { HttpMetrics } from './observability/metrics.js';
export { createSequelize, pingDatabase, tlsOptions } from './runtime/database.js';
export { startService, runService, EXIT_CONFIG } from './runtime/service.js';
export type {
  ServiceDefinition,
  ServiceRuntime,
  RunningService,
  StartOptions,
} from './runtime/service.js';
export * from './tenancy/index.js';
export * from './auth/index.js';
export * from './audit/index.js';
