import type { Role } from '@vextrus/shared';
import type { Request } from 'express';
import type { AuthContext } from './context.js';
import { row } from './db.js';
import { errors } from './errors.js';

export type UserStatus = 'pending' | 'active' | 'disabled';

/** A row of the users table. */
export interface UserRow {
  id: string;
  email: string;
  display_name: string;
  role: Role;
  status: UserStatus;
  version: number;
  created_at: Date;
  updated_at: Date;
  last_login_at: Date | null;
}

export const USER_COLUMNS =
  'id, email, display_name, role, status, version, created_at, updated_at, last_login_at';

/** A user as the API shows it. */
export interface UserView {
  id: string;
  email: string;
  name: string;
  role: Role;
  status: UserStatus;
  version: number;
  createdAt: string;
  updatedAt: string;
  lastLoginAt: string | null;
}

export function userView(row: UserRow): UserView {
  return {
    id: row.id,
    email: row.email,
    name: row.display_name,
    role: row.role,
    status: row.status,
    version: row.version,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    lastLoginAt: row.last_login_at?.toISOString() ?? null,
  };
}

/** Emails are compared and stored trimmed and lower-case. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/**
 * The caller's own user row, which must still be active: an access token outlives a disable
 * by at most its lifetime, but the auth service's own routes refuse it at once. With `roles`,
 * the user's current role must be one of them too, so that a demoted administrator's older
 * token (whose role claim still says tenant_admin) administers nothing. Runs in the request's
 * tenant transaction.
 */
export async function currentCaller(
  ctx: AuthContext,
  req: Request,
  roles?: readonly Role[],
): Promise<UserRow> {
  const user = await row<UserRow>(
    ctx.sequelize,
    `SELECT ${USER_COLUMNS} FROM users WHERE id = $1`,
    [req.user?.userId],
  );
  if (!user || user.status !== 'active') throw errors.UNAUTHENTICATED();
  if (roles && !roles.includes(user.role)) {
    throw errors.FORBIDDEN(`This needs one of the roles ${roles.join(', ')}`);
  }
  return user;
}
