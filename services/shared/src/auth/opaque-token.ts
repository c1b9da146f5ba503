import { createHash, randomBytes } from 'node:crypto';

/** Bytes of randomness in refresh, setup and invitation tokens (256 bits). */
const TOKEN_BYTES = 32;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** A new opaque token: 256 random bits, base64url. Only its hash is ever stored. */
export function newOpaqueToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/**
 * The stored form of an opaque token: SHA-256 of its text. A fast hash is enough because the
 * token is 256 random bits, not a password; undefined when the text cannot be one of ours.
 */
export function hashOpaqueToken(token: unknown): Buffer | undefined {
  if (typeof token !== 'string' || !TOKEN_PATTERN.test(token)) return undefined;
  return createHash('sha256').update(token).digest();
}
