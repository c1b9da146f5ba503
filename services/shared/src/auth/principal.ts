/**
 * Roles a user holds within its tenant, from most to least privileged:
 * - tenant_admin: manages users and everything of the tenant;
 * - manager: creates and changes the tenant's business data;
 * - member: reads the tenant's business data;
 * - auditor: reads business data and the audit log, changes nothing.
 */
export const ROLES = ['tenant_admin', 'manager', 'member', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, from a verified access token. */
export interface Principal {
  /** The user's id (the token's `sub`). */
  userId: string;
  /** The tenant's id (uuid in platform.tenants). */
  tenantId: string;
  /** The tenant's slug, as the gateway's X-Tenant-ID carries it. */
  tenant: string;
  roles: Role[];
  /** The token's `jti`. */
  tokenId: string;
  expiresAt: Date;
}

/** Claim names of the platform's access tokens beyond the registered ones. */
export const CLAIMS = { tenantId: 'tid', tenant: 'tenant', roles: 'roles' } as const;

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}
