export { ROLES, CLAIMS, isRole } from './principal.js';
export type { Principal, Role } from './principal.js';
export {
  TOKEN_ALGORITHM,
  TOKEN_ALGORITHMS,
  MIN_RSA_BITS,
  keyAlgorithm,
  KeysUnavailable,
  staticKeySource,
  remoteKeySource,
} from './keys.js';
export type { KeySource, PublicJwk, RemoteJwksOptions, TokenAlgorithm } from './keys.js';
export {
  createTokenVerifier,
  principalFromClaims,
  checkKeyAlgorithm,
  tokenHeader,
  verifyOptions,
  TokenRejected,
} from './verifier.js';
export type { TokenHeader, TokenPolicy, TokenVerifier } from './verifier.js';
export { authenticate, requireRole } from './middleware.js';
export type { RequireRoleOptions } from './middleware.js';
export { createTenantDirectory, requireTenant, tenantRoute, tenantErrors } from './tenant-scope.js';
export type {
  LookupOptions,
  TenantDirectory,
  TenantEntry,
  Reply,
  RequireTenantOptions,
} from './tenant-scope.js';
export { DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_JWKS_URL, readTokenSettings } from './config.js';
export type { TokenSettings } from './config.js';
export { hashOpaqueToken, newOpaqueToken } from './opaque-token.js';
