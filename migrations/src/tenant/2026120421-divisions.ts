import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Divisions: a tree under one organization, optionally tied to a branch of the same
 * organization. The composite foreign keys keep a parent and a branch inside the organization;
 * cycles and the depth bound are checked by the organization service, which serializes the
 * changes of one organization's tree.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE divisions (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      ${TENANT_ID_COLUMN},
      organization_id uuid NOT NULL,
      branch_id uuid,
      parent_id uuid,
      code text NOT NULL,
      name text NOT NULL,
      status text NOT NULL DEFAULT 'active',
      archive_root uuid,
      version integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT divisions_pkey PRIMARY KEY (tenant_id, id),
      CONSTRAINT divisions_organization_id_code_key UNIQUE (tenant_id, organization_id, code),
      CONSTRAINT divisions_organization_id_id_key UNIQUE (tenant_id, organization_id, id),
      CONSTRAINT divisions_organization_id_fkey FOREIGN KEY (tenant_id, organization_id)
        REFERENCES organizations (tenant_id, id),
      CONSTRAINT divisions_branch_id_fkey FOREIGN KEY (tenant_id, organization_id, branch_id)
        REFERENCES branches (tenant_id, organization_id, id),
      CONSTRAINT divisions_parent_id_fkey FOREIGN KEY (tenant_id, organization_id, parent_id)
        REFERENCES divisions (tenant_id, organization_id, id),
      CONSTRAINT divisions_parent_id_check CHECK (parent_id IS DISTINCT FROM id),
      CONSTRAINT divisions_code_check CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
      CONSTRAINT divisions_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 200),
      CONSTRAINT divisions_status_check CHECK (status IN ('active', 'archived')),
      CONSTRAINT divisions_archive_root_check
        CHECK ((status = 'archived') = (archive_root IS NOT NULL)),
      CONSTRAINT divisions_version_check CHECK (version >= 0),
      CONSTRAINT divisions_updated_at_check CHECK (updated_at >= created_at)
    );
    CREATE INDEX divisions_parent_id_idx ON divisions (tenant_id, parent_id);
    CREATE INDEX divisions_branch_id_idx ON divisions (tenant_id, branch_id);
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE divisions');
}
