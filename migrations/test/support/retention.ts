import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loginUrl, silent, type TestPlane } from '@vextrus/devkit';
import type { Database } from '../../src/index.js';

/** One statement as the cluster's superuser, on a connection of its own. */
export async function asSuperuser(
  plane: TestPlane,
  text: string,
  values?: unknown[],
): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: plane.database.url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

/** How the retention CronJob reaches the database: its login, and the CLI's environment. */
export interface RetentionLogin {
  url: string;
  db: Database;
  /** The plane's role names, as the CLI reads them. */
  env: NodeJS.ProcessEnv;
}

/** Gives the plane's retention role a password (createPlane gives it none) and logs in as it. */
export async function retentionLogin(plane: TestPlane): Promise<RetentionLogin> {
  const password = randomBytes(12).toString('hex');
  const { owner, app, retention, tenantPrefix } = plane.db.roles;
  await asSuperuser(plane, `ALTER ROLE ${retention} PASSWORD '${password}'`);
  const url = loginUrl(plane.database.url, retention, password);
  return {
    url,
    db: plane.open({ url, logger: silent }),
    env: {
      VEXTRUS_OWNER_ROLE: owner,
      VEXTRUS_APP_ROLE: app,
      VEXTRUS_RETENTION_ROLE: retention,
      VEXTRUS_TENANT_ROLE_PREFIX: tenantPrefix,
    },
  };
}
