import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { CLAIMS, type Role, type TenantEntry } from '@vextrus/shared';
import type { KeyRing } from './signing-keys.js';

export interface AccessTokenSubject {
  userId: string;
  role: Role;
}

export interface IssuedAccessToken {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
}

/**
 * Signs access tokens with the newest key, in its algorithm (RS256 for the RSA keys the platform
 * generates), `kid` = the key's JWK thumbprint.
 */
export function createAccessTokenIssuer(
  keys: KeyRing,
  policy: { issuer: string; audience: string; ttlSeconds: number },
): (subject: AccessTokenSubject, tenant: TenantEntry) => IssuedAccessToken {
  return (subject, tenant) => {
    const accessToken = jwt.sign(
      {
        [CLAIMS.tenantId]: tenant.tenantId,
        [CLAIMS.tenant]: tenant.slug,
        [CLAIMS.roles]: [subject.role],
      },
      keys.current.privateKey,
      {
        algorithm: keys.current.algorithm,
        keyid: keys.current.kid,
        issuer: policy.issuer,
        audience: policy.audience,
        subject: subject.userId,
        jwtid: randomUUID(),
        expiresIn: policy.ttlSeconds,
      },
    );
    return { accessToken, tokenType: 'Bearer', expiresIn: policy.ttlSeconds };
  };
}
