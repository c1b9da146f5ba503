import { readTokenSettings, type EnvReader, type TokenSettings } from '@vextrus/shared';
import { defaultHashLimits, type HashLimits } from './passwords.js';
import { signingKeysProblem } from './signing-keys.js';

/** The auth service's own settings (beyond the shared ones). */
export interface AuthSettings {
  tokens: TokenSettings;
  /** Lifetime of access tokens. */
  accessTokenTtlSeconds: number;
  /** A refresh token unused for this long expires. */
  refreshIdleSeconds: number;
  /** A refresh-token family (one login) ends this long after the login, however used. */
  refreshAbsoluteSeconds: number;
  /** A folder of PEM private keys mounted from a Secret; the newest (last by name) signs. */
  signingKeysDir?: string;
  /** Without a mounted Secret, one key is generated once into this folder (local platform). */
  localKeysDir?: string;
  invitationTtlHours: number;
  /** Login attempts per account and per client address within a window before lockout. */
  throttle: { accountLimit: number; addressLimit: number; windowSeconds: number };
  /** argon2 work at once and waiting (see createPasswordHasher). */
  passwordHashing: HashLimits;
}

export interface AuthConfig {
  auth: AuthSettings;
}

/** Reads AUTH_* (see the service README); every problem is collected with the shared ones. */
export function readAuthConfig(reader: EnvReader): AuthConfig {
  const tokens = readTokenSettings(reader);
  const refreshIdleSeconds = reader.integer(
    'AUTH_REFRESH_IDLE_SECONDS',
    7 * 86_400,
    60,
    365 * 86_400,
  );
  const refreshAbsoluteSeconds = reader.integer(
    'AUTH_REFRESH_ABSOLUTE_SECONDS',
    30 * 86_400,
    60,
    365 * 86_400,
  );
  if (refreshIdleSeconds > refreshAbsoluteSeconds) {
    reader.report(
      'AUTH_REFRESH_IDLE_SECONDS',
      'AUTH_REFRESH_IDLE_SECONDS must not exceed AUTH_REFRESH_ABSOLUTE_SECONDS',
    );
  }
  const signingKeysDir = reader.string('AUTH_SIGNING_KEYS_DIR');
  const localKeysDir = reader.string('AUTH_LOCAL_KEYS_DIR');
  if (!signingKeysDir && !localKeysDir) {
    reader.report(
      'AUTH_SIGNING_KEYS_DIR',
      'AUTH_SIGNING_KEYS_DIR (the mounted Secret of signing keys) is missing; ' +
        'set AUTH_LOCAL_KEYS_DIR instead to generate a key locally',
    );
  }
  // A mounted Secret that cannot give a key is a configuration problem, reported with the
  // others before anything connects (a local folder gets its key generated later).
  const keysProblem = signingKeysDir ? signingKeysProblem(signingKeysDir) : undefined;
  if (keysProblem) reader.report('AUTH_SIGNING_KEYS_DIR', keysProblem);
  const hashDefaults = defaultHashLimits();
  const hashConcurrency = reader.integer('AUTH_HASH_CONCURRENCY', hashDefaults.concurrency, 1, 64);
  const passwordHashing = {
    concurrency: hashConcurrency,
    queueLimit: reader.integer('AUTH_HASH_QUEUE_LIMIT', 64 * hashConcurrency, 0, 100_000),
  };
  return {
    auth: {
      tokens,
      passwordHashing,
      accessTokenTtlSeconds: reader.integer('AUTH_ACCESS_TOKEN_TTL_SECONDS', 900, 60, 86_400),
      refreshIdleSeconds,
      refreshAbsoluteSeconds,
      signingKeysDir,
      localKeysDir,
      invitationTtlHours: reader.integer('AUTH_INVITATION_TTL_HOURS', 72, 1, 24 * 30),
      throttle: {
        accountLimit: reader.integer('AUTH_LOGIN_ACCOUNT_LIMIT', 10, 1, 10_000),
        addressLimit: reader.integer('AUTH_LOGIN_ADDRESS_LIMIT', 100, 1, 1_000_000),
        windowSeconds: reader.integer('AUTH_LOGIN_WINDOW_SECONDS', 900, 1, 86_400),
      },
    },
  };
}
