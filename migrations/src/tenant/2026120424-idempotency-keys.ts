import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Idempotency keys of create requests. The row is inserted in the same transaction as what the
 * request creates, so a concurrent request with the same key waits on the unique key and then
 * finds the stored response; a rolled-back request leaves no key behind. `fingerprint` is a hash
 * of the route, caller and body, so a key reused for another request is refused.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE idempotency_keys (
      ${TENANT_ID_COLUMN},
      key text NOT NULL,
      fingerprint text NOT NULL,
      response_status smallint,
      response_body jsonb,
      response_headers jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT idempotency_keys_pkey PRIMARY KEY (tenant_id, key),
      CONSTRAINT idempotency_keys_key_check CHECK (length(key) BETWEEN 1 AND 200),
      CONSTRAINT idempotency_keys_response_headers_check
        CHECK (jsonb_typeof(response_headers) = 'object')
    );
    CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (tenant_id, created_at);
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE idempotency_keys');
}
