import jwt, { type JwtPayload, type VerifyOptions } from 'jsonwebtoken';
import { CLAIMS, isRole, type Principal } from './principal.js';
import { TOKEN_ALGORITHM, type KeySource } from './keys.js';

export interface TokenPolicy {
  /** The `iss` every token must carry. */
  issuer: string;
  /** The `aud` every token must carry. */
  audience: string;
  /** Tolerated clock difference for `exp`, `nbf` and `iat`, in seconds. */
  clockToleranceSeconds?: number;
}

/** Why a token was refused; logged, never sent to the client (which gets one generic 401). */
export class TokenRejected extends Error {
  override readonly name = 'TokenRejected';
}

/** The verification options: algorithm, issuer and audience pinned. */
export function verifyOptions(policy: TokenPolicy): VerifyOptions & { complete: false } {
  return {
    algorithms: [TOKEN_ALGORITHM],
    issuer: policy.issuer,
    audience: policy.audience,
    clockTolerance: policy.clockToleranceSeconds ?? 5,
    complete: false,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SLUG = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;

/**
 * Turns verified claims into a Principal, refusing tokens that lack what the platform needs:
 * `exp` (jsonwebtoken accepts tokens without one), an `iat` that is not in the future, and the
 * platform's claims. `clockToleranceSeconds` is the same tolerance as for `exp` and `nbf`.
 */
export function principalFromClaims(payload: JwtPayload, clockToleranceSeconds = 5): Principal {
  const tenantId: unknown = payload[CLAIMS.tenantId];
  const tenant: unknown = payload[CLAIMS.tenant];
  const roles: unknown = payload[CLAIMS.roles];
  if (typeof payload.exp !== 'number') throw new TokenRejected('token has no exp');
  if (typeof payload.iat !== 'number') throw new TokenRejected('token has no iat');
  if (payload.iat > Date.now() / 1000 + clockToleranceSeconds) {
    throw new TokenRejected('token was issued in the future');
  }
  if (payload.exp <= payload.iat) throw new TokenRejected('token expires before it was issued');
  if (typeof payload.sub !== 'string' || !UUID.test(payload.sub)) {
    throw new TokenRejected('token has no valid sub');
  }
  if (typeof payload.jti !== 'string' || payload.jti.length === 0) {
    throw new TokenRejected('token has no jti');
  }
  if (typeof tenantId !== 'string' || !UUID.test(tenantId)) {
    throw new TokenRejected('token has no valid tid');
  }
  if (typeof tenant !== 'string' || !SLUG.test(tenant)) {
    throw new TokenRejected('token has no valid tenant');
  }
  if (!Array.isArray(roles) || !roles.every(isRole)) {
    throw new TokenRejected('token has invalid roles');
  }
  return {
    userId: payload.sub,
    tenantId,
    tenant,
    roles: [...roles],
    tokenId: payload.jti,
    expiresAt: new Date(payload.exp * 1000),
  };
}

/** Reads the `kid` of a token's header without trusting anything else in it. */
export function tokenKeyId(token: string): string {
  let decoded: jwt.Jwt | null;
  try {
    decoded = jwt.decode(token, { complete: true });
  } catch (err) {
    throw new TokenRejected('token cannot be decoded', { cause: err });
  }
  const kid: unknown = decoded?.header.kid;
  if (!decoded || typeof kid !== 'string' || kid.length === 0) {
    throw new TokenRejected('token header has no kid');
  }
  if (decoded.header.alg !== TOKEN_ALGORITHM) {
    throw new TokenRejected(`token algorithm ${decoded.header.alg} is not accepted`);
  }
  return kid;
}

export interface TokenVerifier {
  readonly policy: TokenPolicy;
  readonly keys: KeySource;
  /** Verifies signature, algorithm, issuer, audience, lifetime and claims; throws TokenRejected. */
  verify(token: string): Promise<Principal>;
}

export function createTokenVerifier(policy: TokenPolicy, keys: KeySource): TokenVerifier {
  const options = verifyOptions(policy);
  return {
    policy,
    keys,
    async verify(token) {
      const key = await keys.key(tokenKeyId(token));
      if (!key) throw new TokenRejected('token is signed with an unknown key');
      let payload: string | JwtPayload;
      try {
        payload = jwt.verify(token, key, options);
      } catch (err) {
        throw new TokenRejected(`token is invalid: ${(err as Error).message}`, { cause: err });
      }
      if (typeof payload === 'string') throw new TokenRejected('token payload is not JSON');
      return principalFromClaims(payload, options.clockTolerance);
    },
  };
}
