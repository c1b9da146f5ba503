import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Refresh tokens, grouped in families: a login starts a family, every refresh rotates to a new
 * token of the same family. Only SHA-256 hashes of the (random, 256-bit) tokens are stored. A
 * token that is presented again after its rotation revokes its whole family.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE refresh_token_families (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      ${TENANT_ID_COLUMN},
      user_id uuid NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      revoked_at timestamptz,
      revoked_reason text,
      CONSTRAINT refresh_token_families_pkey PRIMARY KEY (tenant_id, id),
      CONSTRAINT refresh_token_families_user_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES users (tenant_id, id) ON DELETE CASCADE,
      CONSTRAINT refresh_token_families_expires_at_check CHECK (expires_at > created_at),
      CONSTRAINT refresh_token_families_revoked_check
        CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL)),
      CONSTRAINT refresh_token_families_revoked_reason_check
        CHECK (revoked_reason IN ('logout', 'reuse', 'disabled', 'password_changed'))
    );
    CREATE INDEX refresh_token_families_user_idx
      ON refresh_token_families (tenant_id, user_id) WHERE revoked_at IS NULL;

    CREATE TABLE refresh_tokens (
      ${TENANT_ID_COLUMN},
      token_hash bytea NOT NULL,
      family_id uuid NOT NULL,
      generation integer NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz NOT NULL,
      rotated_at timestamptz,
      CONSTRAINT refresh_tokens_pkey PRIMARY KEY (tenant_id, token_hash),
      CONSTRAINT refresh_tokens_family_generation_key UNIQUE (tenant_id, family_id, generation),
      CONSTRAINT refresh_tokens_family_fkey FOREIGN KEY (tenant_id, family_id)
        REFERENCES refresh_token_families (tenant_id, id) ON DELETE CASCADE,
      CONSTRAINT refresh_tokens_token_hash_check CHECK (length(token_hash) = 32),
      CONSTRAINT refresh_tokens_generation_check CHECK (generation >= 1),
      CONSTRAINT refresh_tokens_expires_at_check CHECK (expires_at > created_at)
    );
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE refresh_tokens; DROP TABLE refresh_token_families');
}
