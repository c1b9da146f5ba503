import type { MigrationContext } from '../migration.js';
import { quoteIdent } from '../identifiers.js';

/**
 * The tenant registry: one row per tenant, written by provisioning. The services read it (never
 * write it) to find a tenant's id, schema and role from the slug in a verified token.
 */
export async function up({ sql, roles }: MigrationContext): Promise<void> {
  await sql(`
    CREATE TABLE tenants (
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      slug text NOT NULL,
      display_name text NOT NULL,
      status text NOT NULL DEFAULT 'provisioning',
      schema_name text NOT NULL,
      role_name text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT tenants_pkey PRIMARY KEY (id),
      CONSTRAINT tenants_slug_key UNIQUE (slug),
      CONSTRAINT tenants_schema_name_key UNIQUE (schema_name),
      CONSTRAINT tenants_role_name_key UNIQUE (role_name),
      CONSTRAINT tenants_slug_check
        CHECK (slug ~ '^[a-z]([a-z0-9-]*[a-z0-9])?$' AND length(slug) <= 40),
      CONSTRAINT tenants_display_name_check CHECK (length(btrim(display_name)) BETWEEN 1 AND 200),
      CONSTRAINT tenants_status_check
        CHECK (status IN ('provisioning', 'active', 'retained', 'deleting'))
    );
    GRANT SELECT ON tenants TO ${quoteIdent(roles.app)};
  `);
}

export async function down({ sql }: MigrationContext): Promise<void> {
  await sql('DROP TABLE tenants');
}
