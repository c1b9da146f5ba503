import { hashOpaqueToken, newOpaqueToken } from '@vextrus/shared';
import type { Database } from '../database.js';
import { MigrationError, MigrationErrorCode } from '../errors.js';
import { seedTenant } from './act-as-tenant.js';

export interface SeedAdminOptions {
  email: string;
  /** The administrator's display name. */
  name: string;
  /** How long the setup token stays valid; 72 hours by default. */
  ttlHours?: number;
}

export interface SeedAdminResult {
  tenant: string;
  /**
   * `issued`: a new administrator and its setup token; `reissued`: the administrator had not
   * completed setup, its older setup tokens are revoked and a new one issued; `complete`: the
   * tenant already has an active administrator, nothing was issued.
   */
  outcome: 'issued' | 'reissued' | 'complete';
  userId?: string;
  email?: string;
  /** The one-time setup token; stored only as a hash, so this is the only copy. */
  setupToken?: string;
  expiresAt?: string;
}

const EMAIL = /^[^\s@]+@[^\s@]+$/;

function invalid(problem: string): MigrationError {
  return new MigrationError(MigrationErrorCode.InvalidArguments, problem);
}

/**
 * `text` quoted, with every space but the plain one and every invisible character written as
 * its code point: a no-break space pasted into an email otherwise looks like a space.
 */
function visible(text: string): string {
  const escaped = text.replace(
    /[^\S ]|[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/gu,
    (c) => `\\u{${c.codePointAt(0)?.toString(16).toUpperCase()}}`,
  );
  return `"${escaped}"`;
}

/**
 * What seedAdmin would refuse in an administrator's definition, or undefined when it is fine: a
 * caller (the operator) can check a definition before it provisions anything.
 */
export function administratorProblem(
  options: Pick<SeedAdminOptions, 'email' | 'name'>,
): string | undefined {
  const email = options.email.trim().toLowerCase();
  const name = options.name.trim();
  if (!EMAIL.test(email) || email.length > 254) return `invalid email ${visible(options.email)}`;
  if (name.length === 0 || name.length > 200) return 'the name must have 1 to 200 characters';
  return undefined;
}

/**
 * Creates the tenant's first administrator (status pending) with a one-time setup token that the
 * auth service's POST /auth/setup exchanges for a password. Running it again before setup is
 * complete revokes the older tokens and issues a new one (for when the delivered Secret was
 * lost); once the tenant has an active administrator it issues nothing.
 */
export async function seedAdmin(
  db: Database,
  slug: string,
  options: SeedAdminOptions,
): Promise<SeedAdminResult> {
  const ttlHours = options.ttlHours ?? 72;
  return seedTenant(db, slug, 'seed-admin', `seed the administrator of ${slug}`, async (q) => {
    // A second run waits for the first to commit (seedTenant's lock), then finds its work.
    const [active] = await q<{ id: string }>(
      "SELECT id FROM users WHERE role = 'tenant_admin' AND status = 'active' LIMIT 1",
    );
    if (active) return { tenant: slug, outcome: 'complete' as const };
    // Looked at only now: once the tenant has an active administrator, they have no effect.
    const problem = administratorProblem(options);
    if (problem) throw invalid(problem);
    const email = options.email.trim().toLowerCase();
    const name = options.name.trim();

    const [existing] = await q<{ id: string; status: string }>(
      'SELECT id, status FROM users WHERE email = $1',
      [email],
    );
    if (existing && existing.status !== 'pending') {
      throw invalid(`${email} is already a ${existing.status} user of tenant ${slug}`);
    }
    const [user] = existing
      ? await q<{ id: string }>(
          `UPDATE users SET role = 'tenant_admin', display_name = $2, updated_at = now(),
                    version = version + 1
              WHERE id = $1 RETURNING id`,
          [existing.id, name],
        )
      : await q<{ id: string }>(
          `INSERT INTO users (email, display_name, role, status)
             VALUES ($1, $2, 'tenant_admin', 'pending') RETURNING id`,
          [email, name],
        );
    if (!user) throw new Error('the administrator row was not written');
    const revoked = await q<{ user_id: string }>(
      `UPDATE one_time_tokens SET revoked_at = now()
          WHERE purpose = 'setup' AND used_at IS NULL AND revoked_at IS NULL
          RETURNING user_id`,
    );

    const setupToken = newOpaqueToken();
    const [token] = await q<{ expires_at: Date }>(
      `INSERT INTO one_time_tokens (token_hash, purpose, user_id, expires_at)
         VALUES ($1, 'setup', $2, now() + make_interval(hours => $3)) RETURNING expires_at`,
      [hashOpaqueToken(setupToken), user.id, ttlHours],
    );
    db.logger.info({ tenant: slug, userId: user.id }, 'setup token issued');
    return {
      tenant: slug,
      outcome: existing || revoked.length > 0 ? ('reissued' as const) : ('issued' as const),
      userId: user.id,
      email,
      setupToken,
      expiresAt: token?.expires_at.toISOString(),
    };
  });
}
