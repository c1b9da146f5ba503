import type { Express, RequestHandler } from 'express';
import {
  assertSafeLoginRole,
  auditRefusals,
  authenticate,
  createTenantDirectory,
  createTokenVerifier,
  requireTenant,
  staticKeySource,
  type ServiceDefinition,
  type ServiceRuntime,
} from '@vextrus/shared';
import { createAudit } from './audit.js';
import { readAuthConfig, type AuthConfig } from './config.js';
import type { AuthContext } from './context.js';
import { createAuthMetrics } from './metrics.js';
import { createPasswordHasher } from './passwords.js';
import { onboardingRoutes } from './routes/onboarding-routes.js';
import { sessionRoutes } from './routes/session-routes.js';
import { userRoutes } from './routes/user-routes.js';
import { createSessions } from './sessions.js';
import { loadKeyRing } from './signing-keys.js';
import { createThrottle } from './throttle.js';
import { createAccessTokenIssuer } from './tokens.js';

/** Contexts by runtime: one process may run several instances (tests, key rotation). */
const contexts = new WeakMap<ServiceRuntime<AuthConfig>, AuthContext>();

async function buildContext(runtime: ServiceRuntime<AuthConfig>): Promise<AuthContext> {
  const settings = runtime.config.auth;
  const { sequelize, logger } = runtime;
  const keys = await loadKeyRing(settings);
  const issueAccess = createAccessTokenIssuer(keys, {
    issuer: settings.tokens.issuer,
    audience: settings.tokens.audience,
    ttlSeconds: settings.accessTokenTtlSeconds,
  });
  logger.info(
    { signingKey: keys.current.kid, publishedKeys: keys.all.length },
    'signing keys loaded',
  );
  const metrics = createAuthMetrics(runtime.metrics.registry);
  const passwords = await createPasswordHasher(settings.passwordHashing, {
    refused: () => metrics.passwordChecksRefused.inc(),
    waiting: (count) => metrics.passwordChecksWaiting.set(count),
  });
  return {
    settings,
    sequelize,
    logger,
    keys,
    verifier: createTokenVerifier(
      { issuer: settings.tokens.issuer, audience: settings.tokens.audience },
      staticKeySource(keys.all.map((key) => key.publicJwk)),
    ),
    directory: createTenantDirectory(sequelize),
    passwords,
    sessions: createSessions(sequelize, issueAccess, {
      idleSeconds: settings.refreshIdleSeconds,
      absoluteSeconds: settings.refreshAbsoluteSeconds,
    }),
    throttle: createThrottle(sequelize, settings.throttle),
    audit: createAudit(sequelize, logger),
    metrics,
  };
}

/**
 * authenticate + tenant agreement. A refusal is audited as access.denied in the token's own
 * tenant, and only while that tenant is the one the token was issued in.
 */
function guard(ctx: AuthContext): RequestHandler[] {
  const { sequelize, directory, logger } = ctx;
  const onRefused = auditRefusals({ sequelize, directory, logger });
  return [
    authenticate(ctx.verifier, { logger: ctx.logger }),
    requireTenant(ctx.directory, { onRefused, logger: ctx.logger }),
  ];
}

function routes(app: Express, ctx: AuthContext): void {
  app.get('/.well-known/jwks.json', (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.json({ keys: ctx.keys.all.map((key) => key.publicJwk) });
  });
  const guarded = guard(ctx);
  sessionRoutes(app, ctx);
  onboardingRoutes(app, ctx, guarded);
  userRoutes(app, ctx, guarded);
}

/** The auth service: tenant users, their passwords, access and refresh tokens. */
export const authService: ServiceDefinition<AuthConfig> = {
  name: 'auth',
  defaultPort: 3001,
  config: readAuthConfig,
  preflight: async (runtime) => {
    await assertSafeLoginRole(runtime.sequelize);
    contexts.set(runtime, await buildContext(runtime));
  },
  routes: (app, runtime) => {
    const ctx = contexts.get(runtime);
    if (!ctx) throw new Error('the auth service routes need its preflight to have run');
    routes(app, ctx);
  },
};
