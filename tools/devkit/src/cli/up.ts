/**
 * Runs the whole platform on this machine: `npm run up` (or `make up`).
 *
 * With no DATABASE_URL or DATABASE_* variables it starts an embedded PostgreSQL whose data stays
 * in .data/ between runs; otherwise it uses the given server. Ctrl-C stops everything.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { startPostgres, type RunningPostgres } from '../postgres.js';
import { REPO_ROOT } from '../testing/process.js';
import { startChild, waitHttpOk, type Child } from '../local/children.js';
import { loadOrCreateSecrets } from '../local/secrets.js';
import { step } from '../local/progress.js';

const DATA_DIR = path.resolve(process.env.VEXTRUS_DATA_DIR ?? path.join(REPO_ROOT, '.data'));
const POSTGRES_PORT = Number(process.env.VEXTRUS_POSTGRES_PORT ?? 55432);
const DATABASE = 'vextrus';
const SERVICES = [
  { name: 'auth', entry: 'services/auth/src/main.ts', port: 3001 },
  { name: 'organization', entry: 'services/organization/src/main.ts', port: 3002 },
];

interface Platform {
  postgres?: RunningPostgres;
  children: Child[];
}

function externalDatabase(): boolean {
  return ['DATABASE_URL', 'DATABASE_HOST', 'DATABASE_URL_FILE'].some((n) => process.env[n]);
}

async function ensureDatabase(adminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [
      DATABASE,
    ]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
}

async function up(platform: Platform): Promise<void> {
  await mkdir(path.join(DATA_DIR, 'logs'), { recursive: true });
  const secrets = await loadOrCreateSecrets(path.join(DATA_DIR, 'secrets.json'));

  let databaseEnv: NodeJS.ProcessEnv = {};
  if (externalDatabase()) {
    console.log('Using the database server named by DATABASE_* / DATABASE_URL.');
  } else {
    platform.postgres = await step(`PostgreSQL on 127.0.0.1:${POSTGRES_PORT}`, () =>
      startPostgres({
        dataDir: path.join(DATA_DIR, 'postgres'),
        password: secrets.postgresPassword,
        port: POSTGRES_PORT,
      }),
    );
    const postgres = platform.postgres;
    await step(`database "${DATABASE}"`, () => ensureDatabase(postgres.url()));
    databaseEnv = {
      DATABASE_HOST: postgres.host,
      DATABASE_PORT: String(postgres.port),
      DATABASE_USERNAME: postgres.user,
      DATABASE_PASSWORD: secrets.postgresPassword,
      DATABASE_NAME: DATABASE,
    };
  }

  for (const service of SERVICES) {
    const child = startChild(
      service.name,
      service.entry,
      { ...databaseEnv, PORT: String(service.port), HOST: '127.0.0.1' },
      path.join(DATA_DIR, 'logs'),
    );
    platform.children.push(child);
    await step(`${service.name} service on 127.0.0.1:${service.port}`, () =>
      waitHttpOk(child, `http://127.0.0.1:${service.port}/health/ready`),
    );
  }

  console.log(`
The platform is up. Data and logs are in ${DATA_DIR}.
  auth          http://127.0.0.1:3001   (logs: .data/logs/auth.log)
  organization  http://127.0.0.1:3002   (logs: .data/logs/organization.log)
  postgres      ${platform.postgres ? `127.0.0.1:${POSTGRES_PORT}, superuser password in .data/secrets.json` : 'external'}

Try:  curl -s http://127.0.0.1:3001/health/ready
Press Ctrl-C to stop everything.`);
}

async function down(platform: Platform): Promise<void> {
  await Promise.all(platform.children.map((child) => child.stop()));
  await platform.postgres?.stop();
}

const platform: Platform = { children: [] };
let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping ...`);
  down(platform).then(
    () => {
      console.log('Stopped.');
      process.exit(0);
    },
    (err: unknown) => {
      console.error('Stopping failed:', err);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

try {
  await up(platform);
  for (const child of platform.children) {
    void child.exited.then(async (code) => {
      if (stopping) return;
      console.error(`\n${child.name} exited (${code}); last lines:\n${await child.tail()}`);
      stop('component exit');
    });
  }
} catch (err) {
  console.error(
    `\nThe platform did not start: ${err instanceof Error ? err.message : String(err)}`,
  );
  await down(platform);
  process.exit(1);
}
