import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Organizations: the companies of the tenant's group. Every key and index leads with tenant_id,
 * so a duplicate code in one tenant reveals nothing about another. `archive_root` names the row
 * whose archiving archived this one (itself, or an ancestor when the archive cascaded), so that a
 * restore brings back exactly what its archive took away.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE organizations (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      ${TENANT_ID_COLUMN},
      code text NOT NULL,
      legal_name text NOT NULL,
      display_name text NOT NULL,
      registration_id text,
      tax_id text,
      country char(2) NOT NULL,
      currency char(3) NOT NULL,
      time_zone text NOT NULL,
      fiscal_year_start_month smallint NOT NULL DEFAULT 1,
      address jsonb NOT NULL DEFAULT '{}'::jsonb,
      status text NOT NULL DEFAULT 'active',
      archive_root uuid,
      version integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT organizations_pkey PRIMARY KEY (tenant_id, id),
      CONSTRAINT organizations_code_key UNIQUE (tenant_id, code),
      CONSTRAINT organizations_code_check CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
      CONSTRAINT organizations_legal_name_check CHECK (length(btrim(legal_name)) BETWEEN 1 AND 200),
      CONSTRAINT organizations_display_name_check
        CHECK (length(btrim(display_name)) BETWEEN 1 AND 200),
      CONSTRAINT organizations_registration_id_check
        CHECK (registration_id IS NULL OR length(btrim(registration_id)) BETWEEN 1 AND 64),
      CONSTRAINT organizations_tax_id_check
        CHECK (tax_id IS NULL OR length(btrim(tax_id)) BETWEEN 1 AND 64),
      CONSTRAINT organizations_country_check CHECK (country ~ '^[A-Z]{2}$'),
      CONSTRAINT organizations_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
      CONSTRAINT organizations_time_zone_check CHECK (length(time_zone) BETWEEN 1 AND 64),
      CONSTRAINT organizations_fiscal_year_start_month_check
        CHECK (fiscal_year_start_month BETWEEN 1 AND 12),
      CONSTRAINT organizations_address_check CHECK (jsonb_typeof(address) = 'object'),
      CONSTRAINT organizations_status_check CHECK (status IN ('active', 'archived')),
      CONSTRAINT organizations_archive_root_check
        CHECK ((status = 'archived') = (archive_root IS NOT NULL)),
      CONSTRAINT organizations_version_check CHECK (version >= 0),
      CONSTRAINT organizations_updated_at_check CHECK (updated_at >= created_at)
    );
    CREATE INDEX organizations_status_display_name_idx
      ON organizations (tenant_id, status, display_name);
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE organizations');
}
