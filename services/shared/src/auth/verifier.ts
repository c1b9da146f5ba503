import type { KeyObject } from 'node:crypto';
import jwt, { type JwtPayload, type VerifyOptions } from 'jsonwebtoken';
import { CLAIMS, isRole, type Principal } from './principal.js';
import {
  isTokenAlgorithm,
  keyAlgorithm,
  TOKEN_ALGORITHMS,
  type KeySource,
  type TokenAlgorithm,
} from './keys.js';

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

/**
 * The verification options: algorithms, issuer and audience pinned. A token is further held to
 * the one algorithm of the key its `kid` names (see tokenHeader and keyAlgorithm).
 */
export function verifyOptions(policy: TokenPolicy): VerifyOptions & { complete: false } {
  return {
    algorithms: [...TOKEN_ALGORITHMS],
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

export interface TokenHeader {
  kid: string;
  alg: TokenAlgorithm;
}

/**
 * Reads a token's `kid` and `alg` without trusting anything else in it; refuses an algorithm the
 * platform does not accept (`none`, HMAC, …). Only the header is decoded, not the payload.
 */
export function tokenHeader(token: string): TokenHeader {
  const end = token.indexOf('.');
  let header: unknown;
  try {
    if (end <= 0) throw new Error('no header segment');
    header = JSON.parse(Buffer.from(token.slice(0, end), 'base64url').toString('utf8'));
  } catch (err) {
    throw new TokenRejected('token cannot be decoded', { cause: err });
  }
  const { kid, alg } = (header ?? {}) as { kid?: unknown; alg?: unknown };
  if (typeof kid !== 'string' || kid.length === 0) {
    throw new TokenRejected('token header has no kid');
  }
  if (!isTokenAlgorithm(alg))
    throw new TokenRejected(`token algorithm ${String(alg)} is not accepted`);
  return { kid, alg };
}

/** Throws unless `key` is a key of the token's algorithm (an RSA key for RS256, …). */
export function checkKeyAlgorithm(key: KeyObject, header: TokenHeader): void {
  if (keyAlgorithm(key) !== header.alg) {
    throw new TokenRejected(`token algorithm ${header.alg} does not match its key ${header.kid}`);
  }
}

export interface TokenVerifier {
  readonly policy: TokenPolicy;
  readonly keys: KeySource;
  /** Verifies signature, algorithm, issuer, audience, lifetime and claims; throws TokenRejected. */
  verify(token: string): Promise<Principal>;
}

export function createTokenVerifier(policy: TokenPolicy, keys: KeySource): TokenVerifier {
  const options = verifyOptions(policy);
  // One options object per algorithm, made once: the key decides which one a token gets.
  const byAlgorithm = new Map<TokenAlgorithm, VerifyOptions & { complete: false }>(
    TOKEN_ALGORITHMS.map((alg) => [alg, { ...options, algorithms: [alg] }]),
  );
  return {
    policy,
    keys,
    async verify(token) {
      const header = tokenHeader(token);
      const key = await keys.key(header.kid);
      if (!key) throw new TokenRejected('token is signed with an unknown key');
      checkKeyAlgorithm(key, header);
      let payload: string | JwtPayload;
      try {
        payload = jwt.verify(token, key, byAlgorithm.get(header.alg));
      } catch (err) {
        throw new TokenRejected(`token is invalid: ${(err as Error).message}`, { cause: err });
      }
      if (typeof payload === 'string') throw new TokenRejected('token payload is not JSON');
      return principalFromClaims(payload, options.clockTolerance);
    },
  };
}
