export { ROLES, CLAIMS, isRole } from './principal.js';
export type { Principal, Role } from './principal.js';
export { TOKEN_ALGORITHM, staticKeySource, remoteKeySource } from './keys.js';
export type { KeySource, PublicJwk, RemoteJwksOptions } from './keys.js';
export {
  createTokenVerifier,
  principalFromClaims,
  tokenKeyId,
  verifyOptions,
  TokenRejected,
} from './verifier.js';
export type { TokenPolicy, TokenVerifier } from './verifier.js';
export { authenticate, requireRole } from './middleware.js';
export { createTenantDirectory, requireTenant, tenantRoute, tenantErrors } from './tenant-scope.js';
export type { TenantDirectory, TenantEntry, Reply, RequireTenantOptions } from './tenant-scope.js';
