import type { Express, RequestHandler } from 'express';
import {
  assertSafeLoginRole,
  auditClientErrors,
  auditRouter,
  auditRefusals,
  authenticate,
  createTenantDirectory,
  createTokenVerifier,
  readTokenSettings,
  remoteKeySource,
  requireRole,
  requireTenant,
  tenantRoute,
  type KeySource,
  type Role,
  type ServiceDefinition,
  type ServiceRuntime,
  type TokenSettings,
} from '@vextrus/shared';
import { Sql } from './data/sql.js';
import { translateDatabaseError } from './domain/operations.js';
import { openApiDocument } from './http/openapi.js';
import { ROUTES, runOperation, type Access } from './http/routes.js';
import { validate, type Inputs } from './http/validation.js';

export interface OrganizationConfig {
  auth: TokenSettings;
}

export interface OrganizationServiceOptions {
  /** Where token signing keys come from; the auth service's JWKS (AUTH_JWKS_URL) by default. */
  keySource?: KeySource;
}

const ROLES_FOR: Record<Access, Role[]> = {
  read: ['tenant_admin', 'manager', 'member', 'auditor'],
  write: ['tenant_admin', 'manager'],
};

/**
 * Mounts /openapi.json and every tenant route. Each route runs the same chain: authenticate →
 * requireTenant → role → validation → the operation in the tenant transaction.
 */
function mountRoutes(
  app: Express,
  runtime: ServiceRuntime<OrganizationConfig>,
  options: OrganizationServiceOptions,
): void {
  const { logger, sequelize } = runtime;
  const keys = options.keySource ?? remoteKeySource({ url: runtime.config.auth.jwksUrl });
  const verifier = createTokenVerifier(runtime.config.auth, keys);
  const guard = authenticate(verifier, { logger });
  const directory = createTenantDirectory(sequelize);
  const onRefused = auditRefusals({ sequelize, directory, logger });
  const tenant = requireTenant(directory, { logger, onRefused });
  const rejected = auditClientErrors({ sequelize, directory, logger });
  const sql = new Sql(sequelize);

  const document = openApiDocument();
  app.get('/openapi.json', (_req, res) => {
    res.json(document);
  });

  for (const route of ROUTES) {
    const validation: RequestHandler = (req, res, next) => {
      res.locals.inputs = validate(req, route.inputs);
      next();
    };
    const handler = tenantRoute(sequelize, async (req, res) => {
      const inputs = res.locals.inputs as Inputs;
      const principal = req.user;
      if (!principal) throw new Error('a tenant route ran without an authenticated user');
      const context = {
        sql,
        userId: principal.userId,
        projectId: inputs.headers['x-project-id'] as string | undefined,
        siteId: inputs.headers['x-site-id'] as string | undefined,
      };
      try {
        return await runOperation(route, context, inputs, req);
      } catch (err) {
        throw translateDatabaseError(err, route.method === 'delete');
      }
    });
    app[route.method](
      route.path,
      guard,
      tenant,
      requireRole(...ROLES_FOR[route.access], { onRefused, logger }),
      validation,
      handler,
      rejected,
    );
  }
  // The tenant's audit log, for tenant_admin and auditor: GET /audit/events, /events/export,
  // /verify. It lives here because the gateway already sends /audit to this service.
  app.use('/audit', auditRouter({ sequelize, directory, verifier, logger }));
}

/** The organization service, with its key source replaceable for tests. */
export function createOrganizationService(
  options: OrganizationServiceOptions = {},
): ServiceDefinition<OrganizationConfig> {
  return {
    name: 'organization',
    defaultPort: 3002,
    config: (reader) => ({ auth: readTokenSettings(reader) }),
    preflight: async ({ sequelize }) => {
      await assertSafeLoginRole(sequelize);
    },
    routes: (app, runtime) => mountRoutes(app, runtime, options),
  };
}

export const organizationService = createOrganizationService();
