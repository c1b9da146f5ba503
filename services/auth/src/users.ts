import type { Role } from '@vextrus/shared';

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
