import { select, type Database } from '../database.js';
import { MigrationError, MigrationErrorCode, wrap } from '../errors.js';
import { validateSlug } from '../identifiers.js';

/** What the audit commands read of a tenant in platform.tenants. */
export interface AuditTenant {
  id: string;
  slug: string;
  status: string;
  schema: string;
  retentionDays: number;
}

interface TenantRow {
  id: string;
  slug: string;
  status: string;
  schema_name: string;
  audit_retention_days: number;
}

/** Tenants whose audit log is kept up: the others have no live schema to work in. */
const LIVE_STATUSES = ['active', 'suspended'];

function fromRow(row: TenantRow): AuditTenant {
  return {
    id: row.id,
    slug: row.slug,
    status: row.status,
    schema: row.schema_name,
    retentionDays: row.audit_retention_days,
  };
}

const COLUMNS = 'id, slug, status, schema_name, audit_retention_days';

/** One tenant by slug; refuses a tenant that is not provisioned or has no live schema. */
export async function auditTenant(db: Database, slug: string): Promise<AuditTenant> {
  validateSlug(slug);
  const [row] = await select<TenantRow>(
    db,
    `SELECT ${COLUMNS} FROM platform.tenants WHERE slug = $1`,
    [slug],
  ).catch((err: unknown) => {
    throw wrap(MigrationErrorCode.MigrationFailed, `read tenant ${slug} from the registry`, err);
  });
  if (!row) {
    throw new MigrationError(
      MigrationErrorCode.TenantNotProvisioned,
      `tenant ${slug} is not in the registry: provision it first`,
    );
  }
  if (!LIVE_STATUSES.includes(row.status)) {
    throw new MigrationError(
      MigrationErrorCode.TenantNotActive,
      `tenant ${slug} is ${row.status}: its audit log is only kept up while active or suspended`,
    );
  }
  return fromRow(row);
}

/** Every tenant with a live schema, by slug. */
export async function liveAuditTenants(db: Database): Promise<AuditTenant[]> {
  const rows = await select<TenantRow>(
    db,
    `SELECT ${COLUMNS} FROM platform.tenants WHERE status = ANY($1::text[]) ORDER BY slug`,
    [LIVE_STATUSES],
  ).catch((err: unknown) => {
    throw wrap(MigrationErrorCode.MigrationFailed, 'list the tenants in the registry', err);
  });
  return rows.map(fromRow);
}
