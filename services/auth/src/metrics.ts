import { Counter, Gauge, type Registry } from 'prom-client';

export interface AuthMetrics {
  logins: Counter<'outcome'>;
  tokensIssued: Counter<'kind'>;
  refreshReuse: Counter;
  lockouts: Counter<'scope'>;
  passwordChecksWaiting: Gauge;
  passwordChecksRefused: Counter;
}

/** The auth service's counters, on the service's own registry (served at /metrics). */
export function createAuthMetrics(registry: Registry): AuthMetrics {
  return {
    logins: new Counter({
      name: 'auth_logins_total',
      help: 'Login attempts by outcome (success, failure, throttled)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    tokensIssued: new Counter({
      name: 'auth_tokens_issued_total',
      help: 'Tokens issued by kind (access, refresh, setup, invitation)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    refreshReuse: new Counter({
      name: 'auth_refresh_reuse_detected_total',
      help: 'Rotated refresh tokens presented again (their families were revoked)',
      registers: [registry],
    }),
    lockouts: new Counter({
      name: 'auth_lockouts_total',
      help: 'Times an account or a client address reached its limit of failed logins',
      labelNames: ['scope'] as const,
      registers: [registry],
    }),
    passwordChecksWaiting: new Gauge({
      name: 'auth_password_checks_waiting',
      help: 'Password hashes and verifications waiting for a free argon2 slot',
      registers: [registry],
    }),
    passwordChecksRefused: new Counter({
      name: 'auth_password_checks_refused_total',
      help: 'Requests answered 503 because too many password checks were already waiting',
      registers: [registry],
    }),
  };
}
