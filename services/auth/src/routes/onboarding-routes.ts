import type { Express, Request, Response } from 'express';
import {
  hashOpaqueToken,
  newOpaqueToken,
  requireRole,
  ROLES,
  tenantRoute,
  withTenantTransaction,
  type TenantEntry,
} from '@vextrus/shared';
import type { RequestHandler } from 'express';
import { z } from 'zod';
import type { AuthContext } from '../context.js';
import { row, rows } from '../db.js';
import { errors, isTenantUnavailable } from '../errors.js';
import { PASSWORD_PROBLEMS, passwordProblem } from '../passwords.js';
import { USER_COLUMNS, currentCaller, normalizeEmail, userView, type UserRow } from '../users.js';
import { addressedTenant, parseBody } from '../validation.js';

const RedeemBody = z.object({
  token: z.string().min(1).max(200),
  password: z.string().min(1).max(1024),
});

/**
 * Control characters (NUL among them, which PostgreSQL cannot store and Sequelize would quietly
 * turn into the two characters `\0`) and lone surrogates (which are no Unicode text).
 */
const UNSTORABLE = /[\p{Cc}\p{Cs}]/u;

const InviteBody = z.object({
  // Lower-cased before the length is checked: some characters grow when lower-cased (U+0130
  // becomes two), and the users table refuses an email longer than 254 characters.
  email: z
    .string()
    .trim()
    .toLowerCase()
    .min(3)
    .max(254)
    .regex(/^[^\s@]+@[^\s@]+$/, 'not an email address')
    .refine((email) => !UNSTORABLE.test(email), 'not an email address'),
  name: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .refine((name) => !UNSTORABLE.test(name), 'must not contain control characters'),
  role: z.enum(ROLES),
});

type Purpose = 'setup' | 'invitation';

/** Refuses a password that breaks the rules, saying which rule. */
export function assertAcceptablePassword(password: string, email: string): void {
  const problem = passwordProblem(password, email);
  if (problem) throw errors.PASSWORD_REJECTED(PASSWORD_PROBLEMS[problem], { reason: problem });
}

/**
 * Exchanges a setup or invitation token for a password: the token is spent, the user becomes
 * active and gets a session. Everything happens in one transaction, so a refused password leaves
 * the token unspent.
 */
async function redeem(
  ctx: AuthContext,
  purpose: Purpose,
  req: Request,
  res: Response,
): Promise<void> {
  const slug = addressedTenant(req);
  const body = parseBody(RedeemBody, req);
  // Asked afresh, as for a login: the first setup of a tenant created again under a deleted
  // tenant's slug must not meet the deleted tenant's cached entry.
  const tenant = await ctx.directory.lookup(slug, { fresh: true });
  const hash = hashOpaqueToken(body.token);
  if (!tenant || tenant.status !== 'active' || !hash) throw errors.INVALID_ONE_TIME_TOKEN();

  const session = await withTenantTransaction(ctx.sequelize, tenant, async () => {
    const found = await row<UserRow>(
      ctx.sequelize,
      `SELECT ${USER_COLUMNS.split(', ')
        .map((c) => `u.${c}`)
        .join(', ')}
         FROM one_time_tokens o JOIN users u ON u.tenant_id = o.tenant_id AND u.id = o.user_id
        WHERE o.token_hash = $1 AND o.purpose = $2 AND o.used_at IS NULL
          AND o.revoked_at IS NULL AND o.expires_at > now() AND u.status = 'pending'
        FOR UPDATE OF o, u`,
      [hash, purpose],
    );
    if (!found) throw errors.INVALID_ONE_TIME_TOKEN();
    assertAcceptablePassword(body.password, found.email);

    const passwordHash = await ctx.passwords.hash(body.password);
    await rows(
      ctx.sequelize,
      `INSERT INTO credentials (user_id, password_hash) VALUES ($1, $2)
       ON CONFLICT (tenant_id, user_id)
       DO UPDATE SET password_hash = EXCLUDED.password_hash, changed_at = now()
       RETURNING user_id`,
      [found.id, passwordHash],
    );
    const [user] = await rows<UserRow>(
      ctx.sequelize,
      `UPDATE users SET status = 'active', version = version + 1, updated_at = now(),
              last_login_at = now()
        WHERE id = $1 RETURNING ${USER_COLUMNS}`,
      [found.id],
    );
    await rows(
      ctx.sequelize,
      'UPDATE one_time_tokens SET used_at = now() WHERE token_hash = $1 RETURNING user_id',
      [hash],
    );
    if (!user) throw new Error(`cannot activate user ${found.id}: the row vanished`);
    const started = await ctx.sessions.start(user, tenant);
    await ctx.audit.record({
      action: purpose === 'setup' ? 'auth.setup.completed' : 'auth.invitation.accepted',
      outcome: 'success',
      resourceType: 'user',
      resourceId: user.id,
      actor: { userId: user.id, roles: [user.role] },
      changes: { before: { status: 'pending' }, after: { status: 'active' } },
    });
    return { ...started, user };
  });
  ctx.metrics.tokensIssued.inc({ kind: 'access' });
  ctx.metrics.tokensIssued.inc({ kind: 'refresh' });
  const { familyId: _familyId, user, ...tokens } = session;
  res.setHeader('Cache-Control', 'no-store');
  res.status(200).json({ ...tokens, user: userView(user) });
}

/**
 * POST /auth/invitations (tenant_admin): creates a pending user with a single-use invitation
 * token, answered once to the administrator, who passes it on. Inviting a still-pending user
 * again revokes the earlier invitations.
 */
function invite(ctx: AuthContext): RequestHandler {
  return tenantRoute(ctx.sequelize, async (req, res) => {
    const inviter = (await currentCaller(ctx, req, ['tenant_admin'])).id;
    const body = parseBody(InviteBody, req);
    const email = normalizeEmail(body.email);
    const tenant = res.locals.tenant as TenantEntry;
    const existing = await row<UserRow>(
      ctx.sequelize,
      `SELECT ${USER_COLUMNS} FROM users WHERE email = $1 FOR UPDATE`,
      [email],
    );
    if (existing && existing.status !== 'pending') {
      throw errors.EMAIL_TAKEN(`${email} is already a user of tenant ${tenant.slug}`);
    }
    const [user] = existing
      ? await rows<UserRow>(
          ctx.sequelize,
          `UPDATE users SET display_name = $2, role = $3, version = version + 1,
                  updated_at = now()
            WHERE id = $1 RETURNING ${USER_COLUMNS}`,
          [existing.id, body.name, body.role],
        )
      : await rows<UserRow>(
          ctx.sequelize,
          `INSERT INTO users (email, display_name, role, status) VALUES ($1, $2, $3, 'pending')
           ON CONFLICT (tenant_id, email) DO NOTHING RETURNING ${USER_COLUMNS}`,
          [email, body.name, body.role],
        );
    if (!user) throw errors.EMAIL_TAKEN(`${email} is already a user of tenant ${tenant.slug}`);
    await rows(
      ctx.sequelize,
      `UPDATE one_time_tokens SET revoked_at = now()
        WHERE user_id = $1 AND used_at IS NULL AND revoked_at IS NULL RETURNING user_id`,
      [user.id],
    );
    const invitationToken = newOpaqueToken();
    const token = await row<{ expires_at: Date }>(
      ctx.sequelize,
      `INSERT INTO one_time_tokens (token_hash, purpose, user_id, created_by, expires_at)
       VALUES ($1, 'invitation', $2, $3, now() + make_interval(hours => $4))
       RETURNING expires_at`,
      [hashOpaqueToken(invitationToken), user.id, inviter, ctx.settings.invitationTtlHours],
    );
    await ctx.audit.record({
      action: 'auth.user.invited',
      outcome: 'success',
      resourceType: 'user',
      resourceId: user.id,
      changes: { after: { email, name: body.name, role: body.role, status: 'pending' } },
      details: { reinvited: Boolean(existing) },
    });
    ctx.metrics.tokensIssued.inc({ kind: 'invitation' });
    return {
      status: 201,
      headers: { 'Cache-Control': 'no-store' },
      body: {
        user: userView(user),
        invitationToken,
        expiresAt: token?.expires_at.toISOString(),
      },
    };
  });
}

export function onboardingRoutes(app: Express, ctx: AuthContext, guard: RequestHandler[]): void {
  // A tenant retained or deleted while its directory entry was still cached: as for an unknown
  // tenant, the token is simply not valid.
  const unlessTenantGone = (err: unknown): never => {
    throw isTenantUnavailable(err) ? errors.INVALID_ONE_TIME_TOKEN() : err;
  };
  app.post('/auth/setup', (req, res) => redeem(ctx, 'setup', req, res).catch(unlessTenantGone));
  app.post('/auth/invitations/accept', (req, res) =>
    redeem(ctx, 'invitation', req, res).catch(unlessTenantGone),
  );
  app.post('/auth/invitations', ...guard, requireRole('tenant_admin'), invite(ctx));
}
