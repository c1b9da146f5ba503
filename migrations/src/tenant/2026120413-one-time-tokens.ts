import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Single-use tokens that let a pending user choose a password: `setup` for the first
 * administrator (made by the seed-admin command), `invitation` for everyone else. Only SHA-256
 * hashes are stored; a token is spent, revoked (a newer one replaced it) or expires.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE one_time_tokens (
      ${TENANT_ID_COLUMN},
      token_hash bytea NOT NULL,
      purpose text NOT NULL,
      user_id uuid NOT NULL,
      created_by uuid,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      used_at timestamptz,
      revoked_at timestamptz,
      CONSTRAINT one_time_tokens_pkey PRIMARY KEY (tenant_id, token_hash),
      CONSTRAINT one_time_tokens_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES users (tenant_id, id) ON DELETE CASCADE,
      CONSTRAINT one_time_tokens_token_hash_check CHECK (length(token_hash) = 32),
      CONSTRAINT one_time_tokens_purpose_check CHECK (purpose IN ('setup', 'invitation')),
      CONSTRAINT one_time_tokens_expires_at_check CHECK (expires_at > created_at),
      CONSTRAINT one_time_tokens_spent_check CHECK (used_at IS NULL OR revoked_at IS NULL)
    );
    CREATE INDEX one_time_tokens_user_idx
      ON one_time_tokens (tenant_id, user_id, purpose)
      WHERE used_at IS NULL AND revoked_at IS NULL;
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE one_time_tokens');
}
