import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

/**
 * The signature algorithms of the platform's access tokens. Each key verifies only the algorithm
 * of its own type (an RSA key of 2048 bits or more: RS256; an EC P-256 key: ES256), so a token
 * cannot choose how it is checked. New keys are RSA: every request of every service verifies a
 * token while only logins and refreshes sign one, and RS256 verifies several times faster than
 * ES256 (bench/results: token verification).
 */
export const TOKEN_ALGORITHMS = ['RS256', 'ES256'] as const;
export type TokenAlgorithm = (typeof TOKEN_ALGORITHMS)[number];

/** The algorithm of newly generated signing keys. */
export const TOKEN_ALGORITHM: TokenAlgorithm = 'RS256';

/** The smallest RSA modulus accepted, for signing and for verifying (NIST SP 800-57). */
export const MIN_RSA_BITS = 2048;

const algorithms = new WeakMap<KeyObject, TokenAlgorithm | null>();

/** The one algorithm a public or private key may be used with, or undefined for any other key. */
export function keyAlgorithm(key: KeyObject): TokenAlgorithm | undefined {
  let algorithm = algorithms.get(key);
  if (algorithm === undefined) {
    const details = key.asymmetricKeyDetails;
    algorithm =
      key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= MIN_RSA_BITS
        ? 'RS256'
        : key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1'
          ? 'ES256'
          : null;
    algorithms.set(key, algorithm);
  }
  return algorithm ?? undefined;
}

export function isTokenAlgorithm(value: unknown): value is TokenAlgorithm {
  return (TOKEN_ALGORITHMS as readonly unknown[]).includes(value);
}

/** Finds the public key for a token's `kid`. */
export interface KeySource {
  key(kid: string): Promise<KeyObject | undefined>;
}

export interface PublicJwk extends JsonWebKey {
  kid: string;
  alg?: string;
  use?: string;
}

/** The public keys could not be had at all (the JWKS is unreachable and nothing is cached). */
export class KeysUnavailable extends Error {
  override readonly name = 'KeysUnavailable';
}

/** Imports the usable keys; a key of another type or a malformed one is skipped, not fatal. */
function importKeys(keys: readonly PublicJwk[]): Map<string, KeyObject> {
  const imported = new Map<string, KeyObject>();
  for (const jwk of keys) {
    if (typeof jwk.kid !== 'string' || jwk.kid.length === 0) continue;
    if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') continue;
    if (jwk.use && jwk.use !== 'sig') continue;
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk, format: 'jwk' });
    } catch {
      continue;
    }
    const algorithm = keyAlgorithm(key);
    // A key published for another algorithm than its type allows is left out entirely.
    if (!algorithm || (jwk.alg !== undefined && jwk.alg !== algorithm)) continue;
    imported.set(jwk.kid, key);
  }
  return imported;
}

/** Keys known in this process (the auth service's own, or a test's). */
export function staticKeySource(keys: readonly PublicJwk[]): KeySource {
  const imported = importKeys(keys);
  return { key: (kid) => Promise.resolve(imported.get(kid)) };
}

export interface RemoteJwksOptions {
  url: string;
  /** Keys are fetched again after this long. */
  maxAgeMs?: number;
  /** An unknown kid fetches again at most this often (so junk tokens cannot flood the issuer). */
  cooldownMs?: number;
  fetchTimeoutMs?: number;
}

/**
 * Public keys from the auth service's JWKS, cached; an unknown kid refreshes the cache (rate
 * limited), so a newly rotated key is picked up without a restart.
 */
export function remoteKeySource(options: RemoteJwksOptions): KeySource {
  const maxAge = options.maxAgeMs ?? 10 * 60_000;
  const cooldown = options.cooldownMs ?? 10_000;
  let keys = new Map<string, KeyObject>();
  let fetchedAt = 0;
  // Failed fetches count too, so an unreachable issuer is not asked again on every request.
  let attemptedAt = 0;
  let inflight: Promise<void> | undefined;

  const refresh = (): Promise<void> => {
    inflight ??= (async () => {
      attemptedAt = Date.now();
      try {
        const response = await fetch(options.url, {
          signal: AbortSignal.timeout(options.fetchTimeoutMs ?? 5_000),
        });
        if (!response.ok) throw new Error(`GET ${options.url} answered ${response.status}`);
        const body = (await response.json()) as { keys?: unknown };
        if (!Array.isArray(body.keys)) throw new Error(`GET ${options.url} gave no keys array`);
        keys = importKeys(body.keys as PublicJwk[]);
        fetchedAt = Date.now();
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };

  return {
    async key(kid) {
      const now = Date.now();
      const stale = fetchedAt === 0 || now - fetchedAt > maxAge || !keys.has(kid);
      if (stale && (inflight || now - attemptedAt > cooldown)) {
        await refresh().catch((err: unknown) => {
          // Known keys keep verifying while the issuer is briefly unreachable.
          if (keys.size === 0) {
            throw new KeysUnavailable(`cannot read the signing keys from ${options.url}`, {
              cause: err,
            });
          }
        });
      } else if (keys.size === 0) {
        throw new KeysUnavailable(`the signing keys from ${options.url} are not available yet`);
      }
      return keys.get(kid);
    },
  };
}
