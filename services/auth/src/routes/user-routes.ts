import type { Express, Request, RequestHandler, Response } from 'express';
import { requireRole, ROLES, tenantRoute, withTenantTransaction } from '@vextrus/shared';
import type { TenantEntry } from '@vextrus/shared';
import { z } from 'zod';
import type { AuthContext } from '../context.js';
import { row, rows } from '../db.js';
import { errors } from '../errors.js';
import { USER_COLUMNS, currentCaller, userView, type UserRow } from '../users.js';
import { clientAddress, parseBody } from '../validation.js';
import { assertAcceptablePassword } from './onboarding-routes.js';
import { admitAttempt } from './session-routes.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const PatchBody = z
  .object({ role: z.enum(ROLES).optional(), status: z.enum(['active', 'disabled']).optional() })
  .strict()
  .refine((body) => body.role !== undefined || body.status !== undefined, {
    message: 'give role, status or both',
  });

const PasswordBody = z.object({
  currentPassword: z.string().min(1).max(1024),
  newPassword: z.string().min(1).max(1024),
});

const ListQuery = z.object({ status: z.enum(['pending', 'active', 'disabled']).optional() });

/** Whether the tenant keeps an active administrator other than `userId`; locks them. */
async function otherActiveAdmins(ctx: AuthContext, userId: string): Promise<number> {
  const admins = await rows<{ id: string }>(
    ctx.sequelize,
    `SELECT id FROM users WHERE role = 'tenant_admin' AND status = 'active' AND id <> $1
     FOR UPDATE`,
    [userId],
  );
  return admins.length;
}

/** PATCH /auth/users/:id (tenant_admin): changes role and/or disables or re-enables. */
function patchUser(ctx: AuthContext): RequestHandler {
  return tenantRoute(ctx.sequelize, async (req) => {
    await currentCaller(ctx, req, ['tenant_admin']);
    const id = String(req.params.id);
    const body = parseBody(PatchBody, req);
    if (!UUID.test(id)) throw errors.USER_NOT_FOUND();
    const before = await row<UserRow>(
      ctx.sequelize,
      `SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE`,
      [id],
    );
    if (!before) throw errors.USER_NOT_FOUND();
    const role = body.role ?? before.role;
    const status = body.status ?? before.status;
    const losesAdmin =
      before.role === 'tenant_admin' &&
      before.status === 'active' &&
      (role !== 'tenant_admin' || status !== 'active');
    if (losesAdmin && (await otherActiveAdmins(ctx, id)) === 0) throw errors.LAST_ADMIN();
    if (status === 'active' && before.status !== 'active') {
      const credential = await row(
        ctx.sequelize,
        'SELECT user_id FROM credentials WHERE user_id = $1',
        [id],
      );
      if (!credential) throw errors.NO_PASSWORD_YET();
    }

    const [after] = await rows<UserRow>(
      ctx.sequelize,
      `UPDATE users SET role = $2, status = $3, version = version + 1, updated_at = now()
        WHERE id = $1 RETURNING ${USER_COLUMNS}`,
      [id, role, status],
    );
    if (!after) throw errors.USER_NOT_FOUND();
    if (role !== before.role) {
      await ctx.audit.record({
        action: 'auth.user.role_changed',
        outcome: 'success',
        resourceType: 'user',
        resourceId: id,
        changes: { before: { role: before.role }, after: { role } },
      });
    }
    if (status !== before.status) {
      if (status === 'disabled') {
        await ctx.sessions.revokeAllOfUser(id, 'disabled');
        await rows(
          ctx.sequelize,
          `UPDATE one_time_tokens SET revoked_at = now()
            WHERE user_id = $1 AND used_at IS NULL AND revoked_at IS NULL RETURNING user_id`,
          [id],
        );
      }
      await ctx.audit.record({
        action: status === 'disabled' ? 'auth.user.disabled' : 'auth.user.enabled',
        outcome: 'success',
        resourceType: 'user',
        resourceId: id,
        changes: { before: { status: before.status }, after: { status } },
      });
    }
    return { body: userView(after) };
  });
}

/**
 * POST /auth/password: the caller changes its own password, proving the current one (counted
 * by the login throttle, so it is no way around it). Every session of the user ends.
 */
async function changePassword(ctx: AuthContext, req: Request, res: Response): Promise<void> {
  const body = parseBody(PasswordBody, req);
  const tenant = res.locals.tenant as TenantEntry;
  const user = await withTenantTransaction(ctx.sequelize, tenant, () => currentCaller(ctx, req));
  const address = clientAddress(req);
  await admitAttempt(ctx, tenant, user.email, address);
  const credential = await withTenantTransaction(ctx.sequelize, tenant, () =>
    row<{ password_hash: string }>(
      ctx.sequelize,
      'SELECT password_hash FROM credentials WHERE user_id = $1',
      [user.id],
    ),
  );
  const ok = await ctx.throttle.check(tenant, user.email, address, () =>
    credential
      ? ctx.passwords.verify(credential.password_hash, body.currentPassword)
      : ctx.passwords.verifyNothing(body.currentPassword),
  );
  if (!ok) {
    await ctx.audit.recordSeparately(tenant, {
      action: 'auth.password.change_failed',
      outcome: 'failure',
      resourceType: 'user',
      resourceId: user.id,
      details: { address, reason: 'wrong_current_password' },
    });
    throw errors.CURRENT_PASSWORD_INCORRECT();
  }
  assertAcceptablePassword(body.newPassword, user.email);
  const passwordHash = await ctx.passwords.hash(body.newPassword);
  await ctx.throttle.succeeded(tenant, user.email, address);
  await withTenantTransaction(ctx.sequelize, tenant, async () => {
    await rows(
      ctx.sequelize,
      `UPDATE credentials SET password_hash = $2, changed_at = now() WHERE user_id = $1
       RETURNING user_id`,
      [user.id, passwordHash],
    );
    const ended = await ctx.sessions.revokeAllOfUser(user.id, 'password_changed');
    await ctx.audit.record({
      action: 'auth.password.changed',
      outcome: 'success',
      resourceType: 'user',
      resourceId: user.id,
      details: { sessionsEnded: ended },
    });
  });
  res.status(204).end();
}

export function userRoutes(app: Express, ctx: AuthContext, guard: RequestHandler[]): void {
  app.get(
    '/auth/me',
    ...guard,
    tenantRoute(ctx.sequelize, async (req) => ({ body: userView(await currentCaller(ctx, req)) })),
  );
  app.get(
    '/auth/users',
    ...guard,
    requireRole('tenant_admin', 'auditor'),
    tenantRoute(ctx.sequelize, async (req) => {
      await currentCaller(ctx, req, ['tenant_admin', 'auditor']);
      const query = ListQuery.safeParse(req.query);
      if (!query.success) {
        throw errors.VALIDATION_FAILED('status must be pending, active or disabled');
      }
      const users = await rows<UserRow>(
        ctx.sequelize,
        `SELECT ${USER_COLUMNS} FROM users WHERE ($1::text IS NULL OR status = $1)
          ORDER BY email LIMIT 1000`,
        [query.data.status ?? null],
      );
      return { body: { items: users.map(userView) } };
    }),
  );
  app.patch('/auth/users/:id', ...guard, requireRole('tenant_admin'), patchUser(ctx));
  app.post('/auth/password', ...guard, (req, res) => changePassword(ctx, req, res));
}
