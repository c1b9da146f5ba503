// `req.user` is declared by @types/passport; the reference keeps it in this file's emitted .d.ts,
// so that services compiling against dist/ (npm run build, the images) see it too.
/// <reference types="passport" preserve="true" />

import type { Request, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { Passport } from 'passport';
import {
  ExtractJwt,
  Strategy as JwtStrategy,
  type StrategyOptionsWithoutRequest,
} from 'passport-jwt';
import { commonErrors } from '../http/errors.js';
import { currentRequestContext } from '../observability/context.js';
import { KeysUnavailable } from './keys.js';
import type { Principal, Role } from './principal.js';
import {
  checkKeyAlgorithm,
  principalFromClaims,
  tokenHeader,
  verifyOptions,
  type TokenHeader,
  type TokenVerifier,
} from './verifier.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- Express's own augmentation point.
  namespace Express {
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled by Principal.
    interface User extends Principal {}
  }
}

const CHALLENGE = 'Bearer realm="vextrus", error="invalid_token"';

/**
 * Guards routes with passport-jwt: a Bearer access token verified with the verifier's keys,
 * algorithm, issuer and audience pinned, and the platform's claims required. Sets `req.user` and
 * puts the user and tenant into the request's logging context. Any failure is one generic 401
 * (the reason goes to the debug log), so a client learns nothing about why; when the signing
 * keys cannot be read at all the answer is 503, so that clients do not drop valid tokens.
 */
export function authenticate(
  verifier: TokenVerifier,
  options: { logger?: Logger } = {},
): RequestHandler {
  const passport = new Passport();
  const verify = verifyOptions(verifier.policy);
  const strategyOptions: StrategyOptionsWithoutRequest = {
    jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
    secretOrKeyProvider: (_req, rawToken: string, done) => {
      let header: TokenHeader;
      try {
        header = tokenHeader(rawToken);
      } catch (err) {
        return done(err);
      }
      verifier.keys.key(header.kid).then(
        (key) => {
          if (!key) return done(new Error('unknown signing key'));
          try {
            checkKeyAlgorithm(key, header);
          } catch (err) {
            return done(err);
          }
          done(null, key as never);
        },
        (err: unknown) => done(err as Error),
      );
    },
    algorithms: verify.algorithms,
    issuer: verify.issuer as string,
    audience: verify.audience as string,
    jsonWebTokenOptions: { clockTolerance: verify.clockTolerance },
  };
  passport.use(
    new JwtStrategy(strategyOptions, (payload: object, done) => {
      try {
        done(null, principalFromClaims(payload, verify.clockTolerance));
      } catch (err) {
        done(null, false, { message: (err as Error).message });
      }
    }),
  );
  return (req, res, next) => {
    const handler = passport.authenticate(
      'jwt',
      { session: false },
      (err: unknown, user: unknown, info: unknown) => {
        if (!user) {
          // passport-jwt reports most failures as `info` (an Error or { message }), not `err`.
          const cause = err ?? info;
          if (cause instanceof KeysUnavailable) {
            options.logger?.error({ err: cause }, 'cannot verify tokens: no signing keys');
            return next(commonErrors.UNAVAILABLE('Access tokens cannot be verified right now'));
          }
          const reason =
            cause instanceof Error
              ? cause.message
              : typeof (cause as { message?: unknown } | undefined)?.message === 'string'
                ? (cause as { message: string }).message
                : 'no valid bearer token';
          res.locals.authFailure = reason;
          options.logger?.debug({ reason }, 'access token refused');
          return next(
            commonErrors.UNAUTHENTICATED(
              undefined,
              {},
              { headers: { 'WWW-Authenticate': CHALLENGE } },
            ),
          );
        }
        const principal = user as Principal;
        req.user = principal;
        const context = currentRequestContext();
        if (context) {
          context.userId = principal.userId;
          context.tenant = principal.tenant;
          context.roles = principal.roles;
        }
        next();
      },
    ) as RequestHandler;
    handler(req, res, next);
  };
}

export interface RequireRoleOptions {
  /** Called for every refused request (the audit log records them), before the 403 is sent. */
  onRefused?: (req: Request, code: string, detail: string) => Promise<void> | void;
  /** Where a failure of onRefused is logged. */
  logger?: Logger;
}

/**
 * Allows the request only when the caller holds one of `roles`. Options may follow the roles:
 * `requireRole('tenant_admin', { onRefused })`.
 */
export function requireRole(...args: [...Role[], RequireRoleOptions] | Role[]): RequestHandler {
  const all: (Role | RequireRoleOptions)[] = args;
  const last = all.at(-1);
  const options: RequireRoleOptions = typeof last === 'object' ? last : {};
  const roles = all.filter((arg): arg is Role => typeof arg === 'string');
  return async (req, _res, next) => {
    const held = req.user?.roles ?? [];
    if (held.some((role) => roles.includes(role))) return next();
    const error = commonErrors.FORBIDDEN(`This needs one of the roles ${roles.join(', ')}`);
    try {
      await options.onRefused?.(req, error.code, error.message);
    } catch (err) {
      // The refusal stands even when recording it failed: the caller still gets its 403.
      options.logger?.error({ err, code: error.code }, 'cannot record a refused request');
    }
    next(error);
  };
}
