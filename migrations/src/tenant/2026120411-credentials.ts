import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Password credentials, apart from the users table so that listing users never reads a hash.
 * The hash is a PHC string (argon2id with its parameters), so parameters can rise over time.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE credentials (
      ${TENANT_ID_COLUMN},
      user_id uuid NOT NULL,
      password_hash text NOT NULL,
      changed_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT credentials_pkey PRIMARY KEY (tenant_id, user_id),
      CONSTRAINT credentials_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES users (tenant_id, id) ON DELETE CASCADE,
      CONSTRAINT credentials_password_hash_check CHECK (password_hash LIKE '$argon2id$%')
    );
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE credentials');
}
