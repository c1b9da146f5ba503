import { AppError, withTenantTransaction, type TenantContext } from '@vextrus/shared';
import type { Sequelize } from 'sequelize';
import { rows } from './db.js';

export interface ThrottleLimits {
  accountLimit: number;
  addressLimit: number;
  windowSeconds: number;
}

export interface ThrottleVerdict {
  /** The attempt may go ahead (it has been counted). */
  allowed: boolean;
  /** Seconds until the window of the exhausted counter ends. */
  retryAfterSeconds: number;
  /** Which counter has just reached its limit with this attempt (for metrics and audit). */
  newlyLocked: ('account' | 'address')[];
}

export interface Throttle {
  /** Counts an attempt for the account and the address; refused when either is exhausted. */
  attempt(tenant: TenantContext, email: string, address: string): Promise<ThrottleVerdict>;
  /** After a successful login: the account starts afresh; the address gets its attempt back. */
  succeeded(tenant: TenantContext, email: string, address: string): Promise<void>;
  /**
   * Runs the password check of a counted attempt. When it is refused because too many checks
   * wait (503 PASSWORD_CHECKS_BUSY), no password was checked, so the attempt is given back to
   * the account and the address: a busy service must not lock its users out.
   */
  check<T>(tenant: TenantContext, email: string, address: string, fn: () => Promise<T>): Promise<T>;
}

interface Counter {
  key: string;
  attempts: number;
  remaining: number;
}

/**
 * Login throttling per account (email) and per client address, in the tenant's login_throttle
 * table. Each attempt is counted BEFORE the password is checked, by one atomic upsert, so that
 * parallel attempts are counted exactly and no more than the limit are ever checked within a
 * window. Unknown emails are counted like known ones, so a lockout tells nothing about existence.
 */
export function createThrottle(sequelize: Sequelize, limits: ThrottleLimits): Throttle {
  const accountKey = (email: string): string => `account:${email}`;
  const addressKey = (address: string): string => `address:${address}`;

  const giveBack = (tenant: TenantContext, email: string, address: string): Promise<unknown> =>
    withTenantTransaction(sequelize, tenant, () =>
      rows(
        sequelize,
        `UPDATE login_throttle SET attempts = greatest(attempts - 1, 0) WHERE key IN ($1, $2)
         RETURNING key`,
        [accountKey(email), addressKey(address)],
      ),
    );

  return {
    async check(tenant, email, address, fn) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof AppError && err.code === 'PASSWORD_CHECKS_BUSY') {
          await giveBack(tenant, email, address);
        }
        throw err;
      }
    },

    async attempt(tenant: TenantContext, email: string, address: string): Promise<ThrottleVerdict> {
      const counters = await withTenantTransaction(sequelize, tenant, () =>
        rows<Counter>(
          sequelize,
          // Keys in one fixed order, so that concurrent upserts lock rows in the same order.
          `INSERT INTO login_throttle (key, attempts, window_started_at)
           VALUES ($1, 1, now()), ($2, 1, now())
           ON CONFLICT (tenant_id, key) DO UPDATE SET
             attempts = CASE WHEN login_throttle.window_started_at
                                  <= now() - make_interval(secs => $3)
                             THEN 1 ELSE login_throttle.attempts + 1 END,
             window_started_at = CASE WHEN login_throttle.window_started_at
                                           <= now() - make_interval(secs => $3)
                                      THEN now() ELSE login_throttle.window_started_at END
           RETURNING key, attempts,
             ceil(extract(epoch FROM window_started_at + make_interval(secs => $3) - now()))::int
               AS remaining`,
          [accountKey(email), addressKey(address), limits.windowSeconds],
        ),
      );
      let allowed = true;
      let retryAfterSeconds = 0;
      const newlyLocked: ThrottleVerdict['newlyLocked'] = [];
      for (const counter of counters) {
        const scope = counter.key.startsWith('account:') ? 'account' : 'address';
        const limit = scope === 'account' ? limits.accountLimit : limits.addressLimit;
        if (counter.attempts <= limit) continue;
        allowed = false;
        retryAfterSeconds = Math.max(retryAfterSeconds, counter.remaining, 1);
        if (counter.attempts === limit + 1) newlyLocked.push(scope);
      }
      return { allowed, retryAfterSeconds, newlyLocked };
    },

    /** After a successful login: the account starts afresh; the address gets its attempt back. */
    async succeeded(tenant: TenantContext, email: string, address: string): Promise<void> {
      await withTenantTransaction(sequelize, tenant, async () => {
        await rows(sequelize, 'DELETE FROM login_throttle WHERE key = $1 RETURNING key', [
          accountKey(email),
        ]);
        await rows(
          sequelize,
          `UPDATE login_throttle SET attempts = greatest(attempts - 1, 0) WHERE key = $1
           RETURNING key`,
          [addressKey(address)],
        );
      });
    },
  };
}
