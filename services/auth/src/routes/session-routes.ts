import type { Express, Request, Response } from 'express';
import { hashOpaqueToken, withTenantTransaction, type TenantEntry } from '@vextrus/shared';
import { z } from 'zod';
import type { AuthContext } from '../context.js';
import { row, rows } from '../db.js';
import { errors, isTenantUnavailable } from '../errors.js';
import { USER_COLUMNS, normalizeEmail, userView, type UserRow } from '../users.js';
import { addressedTenant, clientAddress, parseBody } from '../validation.js';

const LoginBody = z.object({
  // Normalized before the length is checked: the throttle keys the account by the normalized
  // email, and some characters grow when lower-cased (U+0130 becomes two).
  email: z.string().transform(normalizeEmail).pipe(z.string().min(1).max(254)),
  password: z.string().min(1).max(1024),
});

// Any string up to the body limit: one that cannot be a refresh token (an access token sent by
// mistake, a truncated one) is an invalid refresh token (401), not an invalid field.
const RefreshBody = z.object({ refreshToken: z.string().min(1) });

/** Sets the headers every answer carrying tokens needs. */
function noStore(res: Response): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
}

/**
 * An active tenant by the addressed slug, or undefined (unknown and inactive look the same).
 * `fresh` asks the database past the directory's cache.
 */
async function activeTenant(
  ctx: AuthContext,
  slug: string,
  fresh = false,
): Promise<TenantEntry | undefined> {
  const tenant = await ctx.directory.lookup(slug, { fresh });
  return tenant?.status === 'active' ? tenant : undefined;
}

/**
 * Counts an attempt at a user's password (a login, or the current password of a change) against
 * the account and the client address. A counter that reaches its limit with this attempt is
 * counted and audited (auth.login.locked, whichever route reached it); when a counter is
 * exhausted, `refused` is called and the attempt is refused with 429 TOO_MANY_ATTEMPTS.
 */
export async function admitAttempt(
  ctx: AuthContext,
  tenant: TenantEntry,
  email: string,
  address: string,
  refused?: () => void,
): Promise<void> {
  const verdict = await ctx.throttle.attempt(tenant, email, address);
  for (const scope of verdict.newlyLocked) {
    ctx.metrics.lockouts.inc({ scope });
    await ctx.audit.recordSeparately(tenant, {
      action: 'auth.login.locked',
      outcome: 'denied',
      details: { email, address, scope },
    });
  }
  if (!verdict.allowed) {
    refused?.();
    throw errors.TOO_MANY_ATTEMPTS(undefined, undefined, {
      headers: { 'Retry-After': String(verdict.retryAfterSeconds) },
    });
  }
}

/**
 * POST /auth/login. An unknown tenant, an unknown email, a wrong password, a user without a
 * password yet and a disabled user all get the same answer after the same work (one argon2
 * verification), so neither status, body nor timing tells them apart.
 */
async function login(ctx: AuthContext, req: Request, res: Response): Promise<void> {
  const slug = addressedTenant(req);
  const body = parseBody(LoginBody, req);
  const { email } = body;
  const address = clientAddress(req);
  const refuse = () => {
    ctx.metrics.logins.inc({ outcome: 'failure' });
    return errors.INVALID_CREDENTIALS();
  };

  // Asked afresh: a cached entry may be that of a tenant deleted and created again under the same
  // slug, whose users and throttle rows the new tenant's id would not reach. A login costs an
  // argon2 verification anyway; the lookup is small beside it.
  const tenant = await activeTenant(ctx, slug, true);
  if (!tenant) {
    await ctx.passwords.verifyNothing(body.password);
    throw refuse();
  }

  await admitAttempt(ctx, tenant, email, address, () =>
    ctx.metrics.logins.inc({ outcome: 'throttled' }),
  );

  const found = await withTenantTransaction(ctx.sequelize, tenant, () =>
    row<UserRow & { password_hash: string | null }>(
      ctx.sequelize,
      `SELECT ${USER_COLUMNS.split(', ')
        .map((c) => `u.${c}`)
        .join(', ')}, c.password_hash
         FROM users u LEFT JOIN credentials c ON c.tenant_id = u.tenant_id AND c.user_id = u.id
        WHERE u.email = $1`,
      [email],
    ),
  );
  const passwordOk = await ctx.throttle.check(tenant, email, address, () =>
    found?.password_hash
      ? ctx.passwords.verify(found.password_hash, body.password)
      : ctx.passwords.verifyNothing(body.password),
  );
  if (!found || !passwordOk || found.status !== 'active') {
    const reason = !found
      ? 'unknown_email'
      : !passwordOk
        ? 'wrong_password'
        : `user_${found.status}`;
    await ctx.audit.recordSeparately(tenant, {
      action: 'auth.login.failed',
      outcome: 'failure',
      resourceType: 'user',
      resourceId: found?.id,
      actor: found ? { userId: found.id } : {},
      details: { email, address, reason },
    });
    throw refuse();
  }

  await ctx.throttle.succeeded(tenant, email, address);
  const session = await withTenantTransaction(ctx.sequelize, tenant, async () => {
    await rows(ctx.sequelize, 'UPDATE users SET last_login_at = now() WHERE id = $1 RETURNING id', [
      found.id,
    ]);
    const started = await ctx.sessions.start(found, tenant);
    await ctx.audit.record({
      action: 'auth.login.succeeded',
      outcome: 'success',
      resourceType: 'user',
      resourceId: found.id,
      actor: { userId: found.id, roles: [found.role] },
      details: { address },
    });
    return started;
  });
  ctx.metrics.logins.inc({ outcome: 'success' });
  ctx.metrics.tokensIssued.inc({ kind: 'access' });
  ctx.metrics.tokensIssued.inc({ kind: 'refresh' });
  const { familyId: _familyId, ...tokens } = session;
  noStore(res);
  res.status(200).json({ ...tokens, user: userView(found) });
}

/** POST /auth/refresh: rotates the refresh token; a replayed one revokes its family. */
async function refresh(ctx: AuthContext, req: Request, res: Response): Promise<void> {
  const slug = addressedTenant(req);
  const body = parseBody(RefreshBody, req);
  const cached = await activeTenant(ctx, slug);
  if (!cached) throw errors.INVALID_REFRESH_TOKEN();

  const rotate = (tenant: TenantEntry) =>
    withTenantTransaction(ctx.sequelize, tenant, async () => {
      const result = await ctx.sessions.rotate(body.refreshToken, tenant);
      if (result.kind === 'rotated') {
        await ctx.audit.record({
          action: 'auth.token.refreshed',
          outcome: 'success',
          resourceType: 'user',
          resourceId: result.user.id,
          actor: { userId: result.user.id, roles: [result.user.role] },
          details: { family: result.familyId },
        });
      } else if (result.kind === 'reused') {
        await ctx.audit.record({
          action: 'auth.token.reuse_detected',
          outcome: 'denied',
          resourceType: 'user',
          resourceId: result.userId,
          actor: { userId: result.userId },
          details: { family: result.familyId, address: clientAddress(req) },
        });
      }
      return result;
    });
  let outcome = await rotate(cached);
  if (outcome.kind === 'invalid' && outcome.reason === 'unknown') {
    // The cached entry may be that of a tenant deleted since and created again under the same
    // slug (by a login or setup that another process answered): its tokens are in the new one.
    const fresh = await activeTenant(ctx, slug, true);
    if (fresh && fresh.tenantId !== cached.tenantId) outcome = await rotate(fresh);
  }
  if (outcome.kind === 'reused') {
    ctx.metrics.refreshReuse.inc();
    ctx.logger.warn({ userId: outcome.userId }, 'refresh token reused; family revoked');
    throw errors.INVALID_REFRESH_TOKEN();
  }
  if (outcome.kind === 'invalid') {
    ctx.logger.debug({ reason: outcome.reason }, 'refresh refused');
    throw errors.INVALID_REFRESH_TOKEN();
  }
  ctx.metrics.tokensIssued.inc({ kind: 'access' });
  ctx.metrics.tokensIssued.inc({ kind: 'refresh' });
  noStore(res);
  res.status(200).json(outcome.session);
}

/** POST /auth/logout: revokes the refresh token's family; 204 whether or not there was one. */
async function logout(ctx: AuthContext, req: Request, res: Response): Promise<void> {
  const slug = addressedTenant(req);
  const body = parseBody(RefreshBody, req);
  const revoke = (tenant: TenantEntry) =>
    withTenantTransaction(ctx.sequelize, tenant, async () => {
      const revoked = await ctx.sessions.revokeByToken(body.refreshToken);
      if (!revoked) return false;
      await ctx.audit.record({
        action: 'auth.logout',
        outcome: 'success',
        resourceType: 'user',
        resourceId: revoked.userId,
        actor: { userId: revoked.userId },
        details: { family: revoked.familyId },
      });
      return true;
    });
  const cached = await activeTenant(ctx, slug);
  if (cached && !(await revoke(cached)) && hashOpaqueToken(body.refreshToken)) {
    // As for a refresh: the token may be of the tenant created again under a deleted one's slug,
    // and a logout must not leave it valid because this process still caches the deleted one.
    const fresh = await activeTenant(ctx, slug, true);
    if (fresh && fresh.tenantId !== cached.tenantId) await revoke(fresh);
  }
  res.status(204).end();
}

/**
 * A tenant retained or deleted while its directory entry was still cached refuses its
 * transactions with TENANT_UNAVAILABLE; these anonymous routes then answer as they do for an
 * unknown or inactive tenant, so that nobody learns the tenant's state from them.
 */
export function sessionRoutes(app: Express, ctx: AuthContext): void {
  app.post('/auth/login', (req, res) =>
    login(ctx, req, res).catch(async (err: unknown) => {
      if (!isTenantUnavailable(err)) throw err;
      const { password } = (req.body ?? {}) as { password?: unknown };
      await ctx.passwords.verifyNothing(typeof password === 'string' ? password : '');
      ctx.metrics.logins.inc({ outcome: 'failure' });
      throw errors.INVALID_CREDENTIALS();
    }),
  );
  app.post('/auth/refresh', (req, res) =>
    refresh(ctx, req, res).catch((err: unknown) => {
      throw isTenantUnavailable(err) ? errors.INVALID_REFRESH_TOKEN() : err;
    }),
  );
  app.post('/auth/logout', (req, res) =>
    logout(ctx, req, res).catch((err: unknown) => {
      if (!isTenantUnavailable(err)) throw err;
      res.status(204).end();
    }),
  );
}
