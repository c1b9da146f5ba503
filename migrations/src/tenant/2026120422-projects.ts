import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/**
 * Projects: construction or real-estate projects of one organization, optionally run by one of
 * its branches. `status` is the lifecycle (planned, active, on_hold, closed) or `archived`;
 * `status_before_archive` keeps the lifecycle state that a restore returns to.
 */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE projects (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      ${TENANT_ID_COLUMN},
      organization_id uuid NOT NULL,
      branch_id uuid,
      code text NOT NULL,
      name text NOT NULL,
      status text NOT NULL DEFAULT 'planned',
      status_before_archive text,
      start_date date,
      end_date date,
      archive_root uuid,
      version integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT projects_pkey PRIMARY KEY (tenant_id, id),
      CONSTRAINT projects_organization_id_code_key UNIQUE (tenant_id, organization_id, code),
      CONSTRAINT projects_organization_id_fkey FOREIGN KEY (tenant_id, organization_id)
        REFERENCES organizations (tenant_id, id),
      CONSTRAINT projects_branch_id_fkey FOREIGN KEY (tenant_id, organization_id, branch_id)
        REFERENCES branches (tenant_id, organization_id, id),
      CONSTRAINT projects_code_check CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
      CONSTRAINT projects_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 200),
      CONSTRAINT projects_status_check
        CHECK (status IN ('planned', 'active', 'on_hold', 'closed', 'archived')),
      CONSTRAINT projects_status_before_archive_check CHECK (
        (status = 'archived') = (status_before_archive IS NOT NULL)
        AND status_before_archive IS DISTINCT FROM 'archived'
      ),
      CONSTRAINT projects_archive_root_check
        CHECK ((status = 'archived') = (archive_root IS NOT NULL)),
      CONSTRAINT projects_dates_check
        CHECK (start_date IS NULL OR end_date IS NULL OR end_date >= start_date),
      CONSTRAINT projects_version_check CHECK (version >= 0),
      CONSTRAINT projects_updated_at_check CHECK (updated_at >= created_at)
    );
    CREATE INDEX projects_branch_id_idx ON projects (tenant_id, branch_id);
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE projects');
}
