import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Login attempt counters, one row per throttled key (`account:<email>` or `address:<ip>`) and
 * window. Each attempt increments its rows in one atomic upsert, so parallel attempts are
 * counted exactly; a successful login clears its account's row.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE login_throttle (
      ${TENANT_ID_COLUMN},
      key text NOT NULL,
      attempts integer NOT NULL DEFAULT 0,
      window_started_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT login_throttle_pkey PRIMARY KEY (tenant_id, key),
      CONSTRAINT login_throttle_key_check
        CHECK (key ~ '^(account|address):.' AND length(key) <= 300),
      CONSTRAINT login_throttle_attempts_check CHECK (attempts >= 0)
    );
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE login_throttle');
}
