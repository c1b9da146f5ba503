import type { MigrationContext } from '../migration.js';
import { TENANT_ID_COLUMN } from './conventions.js';

/** Sites: the physical places of one project, with optional WGS 84 coordinates. */
export async function up({ sql }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE sites (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      ${TENANT_ID_COLUMN},
      project_id uuid NOT NULL,
      code text NOT NULL,
      name text NOT NULL,
      address jsonb NOT NULL DEFAULT '{}'::jsonb,
      latitude double precision,
      longitude double precision,
      status text NOT NULL DEFAULT 'active',
      archive_root uuid,
      version integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT sites_pkey PRIMARY KEY (tenant_id, id),
      CONSTRAINT sites_project_id_code_key UNIQUE (tenant_id, project_id, code),
      CONSTRAINT sites_project_id_fkey FOREIGN KEY (tenant_id, project_id)
        REFERENCES projects (tenant_id, id),
      CONSTRAINT sites_code_check CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
      CONSTRAINT sites_name_check CHECK (length(btrim(name)) BETWEEN 1 AND 200),
      CONSTRAINT sites_address_check CHECK (jsonb_typeof(address) = 'object'),
      CONSTRAINT sites_coordinates_check CHECK (
        (latitude IS NULL) = (longitude IS NULL)
        AND (latitude IS NULL OR latitude BETWEEN -90 AND 90)
        AND (longitude IS NULL OR longitude BETWEEN -180 AND 180)
      ),
      CONSTRAINT sites_status_check CHECK (status IN ('active', 'archived')),
      CONSTRAINT sites_archive_root_check
        CHECK ((status = 'archived') = (archive_root IS NOT NULL)),
      CONSTRAINT sites_version_check CHECK (version >= 0),
      CONSTRAINT sites_updated_at_check CHECK (updated_at >= created_at)
    );
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE sites');
}
