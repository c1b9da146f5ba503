import type { EnvReader } from '../config/env.js';
import type { TokenPolicy } from './verifier.js';

export const DEFAULT_ISSUER = 'vextrus-auth';
export const DEFAULT_AUDIENCE = 'vextrus-api';
export const DEFAULT_JWKS_URL = 'http://127.0.0.1:3001/.well-known/jwks.json';

/** How a service verifies access tokens: the pinned issuer and audience, and where keys are. */
export interface TokenSettings extends TokenPolicy {
  /** The auth service's JWKS (read by every service but the auth service itself). */
  jwksUrl: string;
}

/**
 * Reads AUTH_ISSUER, AUTH_AUDIENCE and AUTH_JWKS_URL, so that the auth service (which signs) and
 * every other service (which verifies) agree on the same values.
 */
export function readTokenSettings(reader: EnvReader): TokenSettings {
  const issuer = reader.string('AUTH_ISSUER', DEFAULT_ISSUER);
  const audience = reader.string('AUTH_AUDIENCE', DEFAULT_AUDIENCE);
  const jwks = reader.url('AUTH_JWKS_URL', ['http:', 'https:']);
  return { issuer, audience, jwksUrl: jwks?.toString() ?? DEFAULT_JWKS_URL };
}
