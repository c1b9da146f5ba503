import { hashOpaqueToken, newOpaqueToken, type TenantEntry } from '@vextrus/shared';
import type { Sequelize } from 'sequelize';
import { row, rows } from './db.js';
import type { AccessTokenSubject, IssuedAccessToken } from './tokens.js';
import { USER_COLUMNS, type UserRow } from './users.js';

export interface Session extends IssuedAccessToken {
  refreshToken: string;
  refreshTokenExpiresAt: string;
}

export type RevokeReason = 'logout' | 'reuse' | 'disabled' | 'password_changed';

export interface Sessions {
  /** Starts a family for a login (or a completed setup or invitation). */
  start(user: UserRow, tenant: TenantEntry): Promise<Session & { familyId: string }>;
  /** Rotates a refresh token; locks its family so that parallel refreshes take turns. */
  rotate(presented: unknown, tenant: TenantEntry): Promise<RefreshOutcome>;
  /** Revokes the family of a refresh token; the user id when there was one to revoke. */
  revokeByToken(presented: unknown): Promise<{ userId: string; familyId: string } | undefined>;
  /** Ends every session of a user (disabled, password changed); how many were ended. */
  revokeAllOfUser(userId: string, reason: RevokeReason): Promise<number>;
}

/** What a refresh attempt found; the caller answers after the transaction has committed. */
export type RefreshOutcome =
  | { kind: 'rotated'; session: Session; user: UserRow; familyId: string }
  | { kind: 'reused'; userId: string; familyId: string }
  | { kind: 'invalid'; reason: string; userId?: string };

interface TokenLookup {
  family_id: string;
  generation: number;
  token_expired: boolean;
  rotated_at: Date | null;
  user_id: string;
  family_expired: boolean;
  revoked_at: Date | null;
}

/**
 * Refresh-token families. A login starts a family; each refresh rotates to the family's next
 * token; presenting a rotated token again revokes the family (someone holds a copy). All of it
 * runs inside the caller's tenant transaction.
 */
export function createSessions(
  sequelize: Sequelize,
  issueAccess: (subject: AccessTokenSubject, tenant: TenantEntry) => IssuedAccessToken,
  lifetimes: { idleSeconds: number; absoluteSeconds: number },
): Sessions {
  async function addToken(
    familyId: string,
    generation: number,
  ): Promise<{ refreshToken: string; refreshTokenExpiresAt: string }> {
    const refreshToken = newOpaqueToken();
    const stored = await row<{ expires_at: Date }>(
      sequelize,
      `INSERT INTO refresh_tokens (token_hash, family_id, generation, expires_at)
       SELECT $1, id, $3, least(now() + make_interval(secs => $4), expires_at)
         FROM refresh_token_families WHERE id = $2
       RETURNING expires_at`,
      [hashOpaqueToken(refreshToken), familyId, generation, lifetimes.idleSeconds],
    );
    if (!stored) throw new Error(`cannot add a refresh token: family ${familyId} is gone`);
    return { refreshToken, refreshTokenExpiresAt: stored.expires_at.toISOString() };
  }

  async function revokeFamily(familyId: string, reason: RevokeReason): Promise<void> {
    await rows(
      sequelize,
      `UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $2
        WHERE id = $1 AND revoked_at IS NULL RETURNING id`,
      [familyId, reason],
    );
  }

  return {
    /** Starts a family for a login (or a completed setup or invitation). */
    async start(user: UserRow, tenant: TenantEntry): Promise<Session & { familyId: string }> {
      const family = await row<{ id: string }>(
        sequelize,
        `INSERT INTO refresh_token_families (user_id, expires_at)
         VALUES ($1, now() + make_interval(secs => $2)) RETURNING id`,
        [user.id, lifetimes.absoluteSeconds],
      );
      if (!family) throw new Error('cannot start a refresh-token family');
      const refresh = await addToken(family.id, 1);
      return {
        ...issueAccess({ userId: user.id, role: user.role }, tenant),
        ...refresh,
        familyId: family.id,
      };
    },

    /** Rotates a refresh token; locks its family so that parallel refreshes take turns. */
    async rotate(presented: unknown, tenant: TenantEntry): Promise<RefreshOutcome> {
      const hash = hashOpaqueToken(presented);
      if (!hash) return { kind: 'invalid', reason: 'malformed' };
      const found = await row<TokenLookup>(
        sequelize,
        `SELECT t.family_id, t.generation, t.expires_at <= now() AS token_expired, t.rotated_at,
                f.user_id, f.expires_at <= now() AS family_expired, f.revoked_at
           FROM refresh_tokens t
           JOIN refresh_token_families f ON f.tenant_id = t.tenant_id AND f.id = t.family_id
          WHERE t.token_hash = $1
          FOR UPDATE OF t, f`,
        [hash],
      );
      if (!found) return { kind: 'invalid', reason: 'unknown' };
      const userId = found.user_id;
      if (found.revoked_at) return { kind: 'invalid', reason: 'revoked', userId };
      if (found.rotated_at) {
        await revokeFamily(found.family_id, 'reuse');
        return { kind: 'reused', userId, familyId: found.family_id };
      }
      if (found.token_expired || found.family_expired) {
        return { kind: 'invalid', reason: 'expired', userId };
      }
      const user = await row<UserRow>(
        sequelize,
        `SELECT ${USER_COLUMNS} FROM users WHERE id = $1`,
        [userId],
      );
      if (!user || user.status !== 'active') {
        await revokeFamily(found.family_id, 'disabled');
        return { kind: 'invalid', reason: 'user_not_active', userId };
      }
      await rows(
        sequelize,
        'UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1 RETURNING family_id',
        [hash],
      );
      const refresh = await addToken(found.family_id, found.generation + 1);
      const session = { ...issueAccess({ userId, role: user.role }, tenant), ...refresh };
      return { kind: 'rotated', session, user, familyId: found.family_id };
    },

    /** Revokes the family of a refresh token; the user id when there was one to revoke. */
    async revokeByToken(
      presented: unknown,
    ): Promise<{ userId: string; familyId: string } | undefined> {
      const hash = hashOpaqueToken(presented);
      if (!hash) return undefined;
      return row<{ userId: string; familyId: string }>(
        sequelize,
        `UPDATE refresh_token_families f SET revoked_at = now(), revoked_reason = 'logout'
           FROM refresh_tokens t
          WHERE t.token_hash = $1 AND f.tenant_id = t.tenant_id AND f.id = t.family_id
            AND f.revoked_at IS NULL
          RETURNING f.user_id AS "userId", f.id AS "familyId"`,
        [hash],
      );
    },

    /** Ends every session of a user (disabled, password changed). */
    async revokeAllOfUser(userId: string, reason: RevokeReason): Promise<number> {
      const revoked = await rows(
        sequelize,
        `UPDATE refresh_token_families SET revoked_at = now(), revoked_reason = $2
          WHERE user_id = $1 AND revoked_at IS NULL RETURNING id`,
        [userId, reason],
      );
      return revoked.length;
    },
  };
}
