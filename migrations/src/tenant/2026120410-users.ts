import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Users of the tenant. An email is unique within its tenant only (stored lower-case), so the same
 * address in two tenants is two independent users. A user holds one role; `pending` users were
 * invited (or seeded as the first administrator) and have not chosen a password yet.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE users (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      ${TENANT_ID_COLUMN},
      email text NOT NULL,
      display_name text NOT NULL,
      role text NOT NULL,
      status text NOT NULL DEFAULT 'pending',
      version integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      last_login_at timestamptz,
      CONSTRAINT users_pkey PRIMARY KEY (tenant_id, id),
      CONSTRAINT users_email_key UNIQUE (tenant_id, email),
      CONSTRAINT users_email_check
        CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
      CONSTRAINT users_display_name_check CHECK (length(btrim(display_name)) BETWEEN 1 AND 200),
      CONSTRAINT users_role_check CHECK (role IN ('tenant_admin', 'manager', 'member', 'auditor')),
      CONSTRAINT users_status_check CHECK (status IN ('pending', 'active', 'disabled')),
      CONSTRAINT users_version_check CHECK (version >= 0)
    );
    CREATE INDEX users_status_email_idx ON users (tenant_id, status, email);
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE users');
}
