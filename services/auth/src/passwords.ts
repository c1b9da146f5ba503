import { randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import { dictionary } from '@zxcvbn-ts/language-common';

/**
 * Password rules (NIST SP 800-63B): at least 12 characters, up to 256 accepted (so passphrases
 * fit), no composition rules, and refused when found in the list of common passwords shipped
 * with the service (@zxcvbn-ts/language-common, about 50,000 entries) or when it contains the
 * user's email. Characters are Unicode code points after NFKC normalization.
 */
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 256;

/**
 * argon2id at OWASP's minimum (19 MiB, 2 iterations, parallelism 1), computed on libuv's thread
 * pool by @node-rs/argon2 so the event loop keeps serving.
 */
export const HASH_OPTIONS = {
  // Algorithm.Argon2id: the package's const enum cannot be imported under isolatedModules.
  algorithm: 2,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

const COMMON = new Set(dictionary['passwords-common'].map((word) => word.toLowerCase()));

export type PasswordProblem = 'too_short' | 'too_long' | 'common' | 'contains_email';

export const PASSWORD_PROBLEMS: Record<PasswordProblem, string> = {
  too_short: `Use at least ${PASSWORD_MIN_LENGTH} characters; a few words make a good passphrase`,
  too_long: `Use at most ${PASSWORD_MAX_LENGTH} characters`,
  common: 'This password is among the most common ones; choose another',
  contains_email: 'The password must not contain your email address',
};

export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** Why a new password is refused, or undefined when it is acceptable. */
export function passwordProblem(password: string, email: string): PasswordProblem | undefined {
  const normalized = normalizePassword(password);
  const length = [...normalized].length;
  if (length < PASSWORD_MIN_LENGTH) return 'too_short';
  if (length > PASSWORD_MAX_LENGTH) return 'too_long';
  const lower = normalized.toLowerCase();
  if (COMMON.has(lower)) return 'common';
  if (lower.includes(email.toLowerCase())) return 'contains_email';
  return undefined;
}

export function hashPassword(password: string): Promise<string> {
  return hash(normalizePassword(password), HASH_OPTIONS);
}

export interface PasswordVerifier {
  /** Verifies against a stored hash; false (never a throw) for a malformed hash. */
  verify(storedHash: string, password: string): Promise<boolean>;
  /**
   * Spends the same time as a real verification and returns false: for unknown emails and
   * tenants, and users without a password, so that timing does not tell them apart.
   */
  verifyNothing(password: string): Promise<false>;
}

export async function createPasswordVerifier(): Promise<PasswordVerifier> {
  const dummy = await hash(randomBytes(16).toString('hex'), HASH_OPTIONS);
  const check = (storedHash: string, password: string): Promise<boolean> =>
    verify(storedHash, normalizePassword(password)).catch(() => false);
  return {
    verify: check,
    verifyNothing: async (password) => {
      await check(dummy, password);
      return false;
    },
  };
}
