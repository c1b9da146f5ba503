import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Branches: offices of one organization. The code is unique within the organization. The key
 * (tenant_id, organization_id, id) lets divisions and projects reference a branch of their own
 * organization only.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE branches (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      ${TENANT_ID_COLUMN},
      organization_id uuid NOT NULL,
      code text NOT NULL,
      name text NOT NULL,
      address jsonb NOT NULL DEFAULT '{}'::jsonb,
      phone text,
      status text NOT NULL DEFAULT 'active',
      archive_root uuid,
      version integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT branches_pkey PRIMARY KEY (tenant_id, id),
      CONSTRAINT branches_organization_id_code_key UNIQUE (tenant_id, organization_id, code),
      CONSTRAINT branches_organization_id_id_key UNIQUE (tenant_id, organization_id, id),
      CONSTRAINT branches_organization_id_fkey FOREIGN KEY (tenant_id, organization_id)
        REFERENCES organizations (tenant_id, id),
      CONSTRAINT branches_code_check CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
      CONSTRAINT branches_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 200),
      CONSTRAINT branches_address_check CHECK (jsonb_typeof(address) = 'object'),
      CONSTRAINT branches_phone_check CHECK (phone IS NULL OR phone ~ '^\\+?[0-9 ()-]{3,32}$'),
      CONSTRAINT branches_status_check CHECK (status IN ('active', 'archived')),
      CONSTRAINT branches_archive_root_check
        CHECK ((status = 'archived') = (archive_root IS NOT NULL)),
      CONSTRAINT branches_version_check CHECK (version >= 0),
      CONSTRAINT branches_updated_at_check CHECK (updated_at >= created_at)
    );
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE branches');
}
