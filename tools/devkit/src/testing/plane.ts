import { randomBytes } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from './database.js';
import { pino } from 'pino';
import {
  ensureRoles,
  migratePlatform,
  openDatabase,
  sealSchemaAudit,
  type Database,
  type OpenDatabaseOptions,
} from '@vextrus/migrations';

/**
 * A test database with the platform roles (uniquely named: roles are cluster-wide) and, unless
 * told otherwise, the platform migrations applied. Provision tenants on it with
 * `provision(db, …)` and connect services with `appUrl`, which logs in as the application role.
 */
export interface TestPlane {
  database: TestDatabase;
  /** Connected as the cluster superuser, acting as operator. */
  db: Database;
  appPassword: string;
  ownerPassword: string;
  /** A URL that logs in as the application role. */
  appUrl: string;
  open(options?: OpenDatabaseOptions): Database;
  /**
   * Chains the audit records still pending in a tenant's schema (as the services and the audit
   * commands do before they read the log) and says how many; for tests that read the log
   * directly.
   */
  sealAudit(schema: string): Promise<number>;
  close(): Promise<void>;
}

export const silent = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

export async function createPlane(
  prefix: string,
  options: { platform?: boolean } = {},
): Promise<TestPlane> {
  const database = await createTestDatabase(prefix);
  const tag = `t${randomBytes(3).toString('hex')}_`;
  const roles = {
    owner: `${tag}owner`,
    app: `${tag}app`,
    retention: `${tag}retention`,
    tenantPrefix: `${tag}tenant_`,
  };
  const opened: Database[] = [];
  const open = (extra: OpenDatabaseOptions = {}): Database => {
    const db = openDatabase({ url: database.url, roles, logger: silent, ...extra });
    opened.push(db);
    return db;
  };
  const db = open();
  const appPassword = randomBytes(12).toString('hex');
  const ownerPassword = randomBytes(12).toString('hex');
  await ensureRoles(db, { owner: ownerPassword, app: appPassword });
  if (options.platform !== false) await migratePlatform(db);
  const appUrl = loginUrl(database.url, roles.app, appPassword);
  return {
    database,
    db,
    appPassword,
    ownerPassword,
    appUrl,
    open,
    sealAudit: (schema) => sealSchemaAudit(db, schema),
    close: async () => {
      await Promise.all(opened.map((d) => d.close()));
      // Roles are cluster-wide and stay behind: the test cluster is thrown away after the run.
      await database.drop();
    },
  };
}

/** The URL of a database with another login. */
export function loginUrl(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
}
