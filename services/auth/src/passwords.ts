import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { hash, verify } from '@node-rs/argon2';
import { dictionary } from '@zxcvbn-ts/language-common';
import { errors } from './errors.js';

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
 * pool by @node-rs/argon2 so the event loop keeps serving, and never on more threads at once
 * than HashLimits allows (see createPasswordHasher).
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

/** How much argon2 work may run at once, and how much may wait for it. */
export interface HashLimits {
  /** Hashes computed at the same time (each takes one thread of libuv's pool and one core). */
  concurrency: number;
  /** Hashes waiting for a slot; one more is refused: 503 PASSWORD_CHECKS_BUSY, Retry-After. */
  queueLimit: number;
}

/**
 * The default: one core stays free for the event loop (health checks, token verification, every
 * other request), so a flood of logins slows logins down, not the service.
 */
export function defaultHashLimits(cores = availableParallelism()): HashLimits {
  const concurrency = Math.max(1, cores - 1);
  return { concurrency, queueLimit: 64 * concurrency };
}

/** Told about the queue, for metrics. */
export interface HashObserver {
  /** A check was refused because the queue was full. */
  refused?(): void;
  /** The number of checks waiting changed. */
  waiting?(count: number): void;
}

/** A counting semaphore with a bounded FIFO queue. */
export class HashGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly limits: HashLimits,
    private readonly observer: HashObserver = {},
  ) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.concurrency) {
      if (this.waiting.length >= this.limits.queueLimit) {
        this.observer.refused?.();
        throw errors.PASSWORD_CHECKS_BUSY(undefined, undefined, {
          headers: { 'Retry-After': '1' },
        });
      }
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        this.observer.waiting?.(this.waiting.length);
      });
    } else {
      this.running += 1;
    }
    try {
      return await task();
    } finally {
      // The slot passes straight to the next waiter, so running never drops below the bound
      // while work is queued and no newcomer can overtake the queue.
      const next = this.waiting.shift();
      if (next) {
        this.observer.waiting?.(this.waiting.length);
        next();
      } else this.running -= 1;
    }
  }
}

export interface PasswordHasher {
  /** Hashes a new password (normalized as the rules say). */
  hash(password: string): Promise<string>;
  /** Verifies against a stored hash; false (never a throw) for a malformed hash. */
  verify(storedHash: string, password: string): Promise<boolean>;
  /**
   * Spends the same time as a real verification and returns false: for unknown emails and
   * tenants, and users without a password, so that timing does not tell them apart.
   */
  verifyNothing(password: string): Promise<false>;
}

/**
 * argon2 behind one gate: at most `limits.concurrency` hashes at once, at most
 * `limits.queueLimit` waiting, the rest refused (503 PASSWORD_CHECKS_BUSY). Every caller waits in
 * the same queue, so a refusal says nothing about the account.
 */
export async function createPasswordHasher(
  limits: HashLimits = defaultHashLimits(),
  observer: HashObserver = {},
): Promise<PasswordHasher> {
  const gate = new HashGate(limits, observer);
  const dummy = await hash(randomBytes(16).toString('hex'), HASH_OPTIONS);
  const check = (storedHash: string, password: string): Promise<boolean> =>
    gate.run(() => verify(storedHash, normalizePassword(password)).catch(() => false));
  return {
    hash: (password) => gate.run(() => hash(normalizePassword(password), HASH_OPTIONS)),
    verify: check,
    verifyNothing: async (password) => {
      await check(dummy, password);
      return false;
    },
  };
}
