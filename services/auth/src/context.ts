import type { Logger, TenantDirectory, TokenVerifier } from '@vextrus/shared';
import type { Sequelize } from 'sequelize';
import type { Audit } from './audit.js';
import type { AuthSettings } from './config.js';
import type { AuthMetrics } from './metrics.js';
import type { PasswordHasher } from './passwords.js';
import type { Sessions } from './sessions.js';
import type { KeyRing } from './signing-keys.js';
import type { Throttle } from './throttle.js';

/** What the routes of the auth service work with; built once at start-up. */
export interface AuthContext {
  settings: AuthSettings;
  sequelize: Sequelize;
  logger: Logger;
  keys: KeyRing;
  verifier: TokenVerifier;
  directory: TenantDirectory;
  passwords: PasswordHasher;
  sessions: Sessions;
  throttle: Throttle;
  audit: Audit;
  metrics: AuthMetrics;
}
