import type { EnvReader } from '@vextrus/shared';
import type { RoleNames } from '@vextrus/migrations';
import type { OperatorSettings } from './tenant/reconciler.js';

export interface Settings {
  operator: OperatorSettings;
  roles: Partial<RoleNames>;
  probePort: number;
  leaderElection: boolean;
  workers: number;
}

function service(
  reader: EnvReader,
  name: string,
  fallback: string,
): { name: string; port: number } {
  const value = reader.string(name, fallback);
  const match = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?):(\d{1,5})$/.exec(value);
  if (!match) {
    reader.report(name, `${name} must be <service-name>:<port>, got "${value}"`);
    return { name: 'invalid', port: 1 };
  }
  return { name: match[1] ?? '', port: Number(match[3]) };
}

/** A Kubernetes namespace name (RFC 1123 label). */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A Traefik entry point name. */
const ENTRY_POINT = /^[A-Za-z0-9][-A-Za-z0-9_]*$/;

function namespace(reader: EnvReader): string {
  const value = reader.string('OPERATOR_NAMESPACE', 'vextrus');
  if (!NAMESPACE.test(value)) {
    reader.report(
      'OPERATOR_NAMESPACE',
      `OPERATOR_NAMESPACE must be a Kubernetes namespace name, got "${value}"`,
    );
  }
  return value;
}

function entryPoints(reader: EnvReader): string[] {
  const value = reader.string('GATEWAY_ENTRYPOINTS', 'web');
  const names = value.split(',');
  if (!names.every((name) => ENTRY_POINT.test(name))) {
    reader.report(
      'GATEWAY_ENTRYPOINTS',
      `GATEWAY_ENTRYPOINTS must be entry point names separated by commas, got "${value}"`,
    );
  }
  return names;
}

function image(reader: EnvReader): string {
  const value = reader.string('MIGRATIONS_IMAGE', 'vextrus/migrations:latest');
  if (value.trim() === '' || /\s/.test(value)) {
    reader.report('MIGRATIONS_IMAGE', `MIGRATIONS_IMAGE must be an image name, got "${value}"`);
  }
  return value;
}

/**
 * Every tenant is re-verified within this period (5 min). Changes to Tenants and to the objects
 * the operator owns are watched and reconciled at once; the resync finds drift that nothing
 * watches (PostgreSQL: schema, role, privileges, RLS) and costs one statement per tenant when
 * nothing drifted, so 1,000 tenants make about 3.3 reads a second. controller-runtime's default
 * of 10 h would leave such drift for hours; see bench/results for the measured steady state.
 */
export const DEFAULT_RESYNC_SECONDS = 300;

/** The operator's variables (see the README's configuration reference). */
export function readOperatorSettings(reader: EnvReader): Settings {
  const roles: Partial<RoleNames> = {};
  // The same role variables as the migration Jobs (vextrus-migrate): provisioning and the Jobs
  // must agree on every name, the tenant role prefix included.
  const owner = reader.string('VEXTRUS_OWNER_ROLE');
  const app = reader.string('VEXTRUS_APP_ROLE');
  const retention = reader.string('VEXTRUS_RETENTION_ROLE');
  const tenantPrefix = reader.string('VEXTRUS_TENANT_ROLE_PREFIX');
  if (owner) roles.owner = owner;
  if (app) roles.app = app;
  if (retention) roles.retention = retention;
  if (tenantPrefix) roles.tenantPrefix = tenantPrefix;
  const operatorNamespace = namespace(reader);
  return {
    operator: {
      namespace: operatorNamespace,
      migrations: {
        namespace: operatorNamespace,
        image: image(reader),
        databaseSecret: reader.string('MIGRATIONS_DATABASE_SECRET', 'vextrus-database-owner'),
        concurrency: reader.integer('MIGRATION_CONCURRENCY', 4, 1, 100),
        retryBaseMs: reader.integer('MIGRATION_RETRY_SECONDS', 30, 1, 3600) * 1000,
      },
      routes: {
        namespace: operatorNamespace,
        auth: service(reader, 'AUTH_SERVICE', 'vextrus-auth:3001'),
        organization: service(reader, 'ORGANIZATION_SERVICE', 'vextrus-organization:3002'),
        entryPoints: entryPoints(reader),
      },
      resyncMs: reader.integer('RESYNC_SECONDS', DEFAULT_RESYNC_SECONDS, 1, 86_400) * 1000,
      urlScheme: reader.oneOf('TENANT_URL_SCHEME', ['http', 'https'] as const, 'http'),
    },
    roles,
    probePort: reader.integer('PROBE_PORT', 8081, 0, 65535),
    leaderElection: reader.oneOf('LEADER_ELECTION', ['true', 'false'] as const, 'true') === 'true',
    workers: reader.integer('WORKERS', 4, 1, 64),
  };
}
