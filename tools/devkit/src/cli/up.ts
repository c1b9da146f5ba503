/**
 * Runs the whole platform on this machine: `make up` (or `npm run up`).
 *
 * Embedded PostgreSQL (data kept in .data/), the platform roles and migrations, a local
 * Kubernetes control plane with its node, the Tenant CRD, the operator, the auth and
 * organization services, and the example tenants in examples/. Ctrl-C stops everything; the next
 * run finds the data again. With DATABASE_URL or DATABASE_* set it uses that server instead of
 * the embedded one (as a superuser or a role that may create roles).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import {
  databaseUrl,
  ensureRoles,
  migratePlatform,
  openDatabase,
  type Database,
} from '@vextrus/migrations';
import { createHash } from 'node:crypto';
import { postgresCanReach, startPostgres, type RunningPostgres } from '../postgres.js';
import { REPO_ROOT } from '../testing/process.js';
import { startChild, waitHttpOk, type Child } from '../local/children.js';
import { loadOrCreateSecrets, type LocalSecrets } from '../local/secrets.js';
import { step } from '../local/progress.js';
import { startCluster, waitUntil, type Cluster } from '../kube/cluster.js';
import { toolPath } from '../kube/binaries.js';
import { loginUrl, silent } from '../testing/plane.js';

const run = promisify(execFile);
const DATA_DIR = path.resolve(process.env.VEXTRUS_DATA_DIR ?? path.join(REPO_ROOT, '.data'));
const POSTGRES_PORT = Number(process.env.VEXTRUS_POSTGRES_PORT ?? 55432);
const DATABASE = 'vextrus';
const NAMESPACE = 'vextrus';
const AUTH_PORT = 3001;
const ORGANIZATION_PORT = 3002;
const OPERATOR_PROBE_PORT = 8081;

interface Platform {
  postgres?: RunningPostgres;
  cluster?: Cluster;
  db?: Database;
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

/** Builds (first run: about 15 minutes) or finds the Go-built tools, showing the build's progress. */
async function buildTools(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(path.join(REPO_ROOT, 'tools/build-tools.sh'), [
      'etcd',
      'kube-apiserver',
      'kube-controller-manager',
      'kubectl',
    ]);
    child.stderr.on('data', (chunk: Buffer) =>
      process.stdout.write(`\n    ${chunk.toString().trim()}`),
    );
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`tools/build-tools.sh exited ${code}`)),
    );
  });
}

async function adminDatabaseUrl(platform: Platform, secrets: LocalSecrets): Promise<string> {
  if (externalDatabase()) return databaseUrl(process.env);
  let dataDir = path.join(DATA_DIR, 'postgres');
  if (!postgresCanReach(dataDir)) {
    // As root, PostgreSQL runs as the postgres user, who cannot enter a clone under /root or
    // another closed folder: keep this clone's database in a folder of its own under /var/lib.
    const id = createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12);
    dataDir = path.join('/var/lib/vextrus', `postgres-${id}`);
    console.log(`  (the postgres user cannot enter ${DATA_DIR}; the database lives in ${dataDir})`);
  }
  platform.postgres = await step(`PostgreSQL on 127.0.0.1:${POSTGRES_PORT}`, () =>
    startPostgres({
      dataDir,
      password: secrets.postgresPassword,
      port: POSTGRES_PORT,
    }),
  );
  const postgres = platform.postgres;
  await step(`database "${DATABASE}"`, () => ensureDatabase(postgres.url()));
  return postgres.url(DATABASE);
}

async function kubectl(cluster: Cluster, ...args: string[]): Promise<string> {
  const binary = await toolPath('kubectl');
  const { stdout } = await run(binary, ['--kubeconfig', cluster.plane.kubeconfig, ...args]);
  return stdout;
}

async function up(platform: Platform): Promise<void> {
  await mkdir(path.join(DATA_DIR, 'logs'), { recursive: true });
  const secrets = await loadOrCreateSecrets(path.join(DATA_DIR, 'secrets.json'));
  const adminUrl = await adminDatabaseUrl(platform, secrets);

  const db = openDatabase({ url: adminUrl, logger: silent });
  platform.db = db;
  await step('database roles and platform migrations', async () => {
    await ensureRoles(db, {
      owner: secrets.ownerPassword,
      app: secrets.appPassword,
      retention: secrets.retentionPassword,
    });
    await migratePlatform(db);
  });
  const ownerUrl = loginUrl(adminUrl, db.roles.owner, secrets.ownerPassword);
  const appUrl = loginUrl(adminUrl, db.roles.app, secrets.appPassword);

  await step('Kubernetes tools (built from Go modules on first use)', buildTools);
  const cluster = await step('local control plane and node', () =>
    startCluster({ dir: path.join(DATA_DIR, 'kube') }),
  );
  platform.cluster = cluster;
  await step('Tenant CRD and the vextrus namespace', async () => {
    await kubectl(
      cluster,
      'apply',
      '--server-side',
      '-f',
      path.join(REPO_ROOT, 'charts/vextrus/crds'),
    );
    const crds = await run(path.join(REPO_ROOT, 'tools/build-tools.sh'), ['--traefik-crds']);
    await kubectl(cluster, 'apply', '--server-side', '-f', crds.stdout.trim());
    await kubectl(cluster, 'create', 'namespace', NAMESPACE).catch(() => '');
    const secret = [
      'create',
      'secret',
      'generic',
      'vextrus-database-owner',
      '-n',
      NAMESPACE,
      `--from-literal=DATABASE_URL=${ownerUrl}`,
      '--dry-run=client',
      '-o',
      'yaml',
    ];
    const manifest = await kubectl(cluster, ...secret);
    const apply = spawn(await toolPath('kubectl'), [
      '--kubeconfig',
      cluster.plane.kubeconfig,
      'apply',
      '-f',
      '-',
    ]);
    apply.stdin.end(manifest);
    await new Promise((resolve) => apply.on('exit', resolve));
  });

  const logDir = path.join(DATA_DIR, 'logs');
  const serviceEnv = {
    DATABASE_URL: appUrl,
    HOST: '127.0.0.1',
    AUTH_LOCAL_KEYS_DIR: path.join(DATA_DIR, 'keys'),
    AUTH_JWKS_URL: `http://127.0.0.1:${AUTH_PORT}/.well-known/jwks.json`,
  };
  const services = [
    { name: 'auth', entry: 'services/auth/src/main.ts', port: AUTH_PORT },
    { name: 'organization', entry: 'services/organization/src/main.ts', port: ORGANIZATION_PORT },
  ];
  for (const service of services) {
    const child = startChild(
      service.name,
      service.entry,
      { ...serviceEnv, PORT: String(service.port) },
      logDir,
    );
    platform.children.push(child);
    await step(`${service.name} service on 127.0.0.1:${service.port}`, () =>
      waitHttpOk(child, `http://127.0.0.1:${service.port}/health/ready`),
    );
  }

  const operator = startChild(
    'operator',
    'operator/src/main.ts',
    {
      KUBECONFIG: cluster.plane.kubeconfig,
      DATABASE_URL: ownerUrl,
      OPERATOR_NAMESPACE: NAMESPACE,
      MIGRATIONS_IMAGE: 'vextrus/migrations:local',
      PROBE_PORT: String(OPERATOR_PROBE_PORT),
      RESYNC_SECONDS: '30',
      LEADER_ELECTION: 'false',
    },
    logDir,
  );
  platform.children.push(operator);
  await step(`operator (probes on 127.0.0.1:${OPERATOR_PROBE_PORT})`, () =>
    waitHttpOk(operator, `http://127.0.0.1:${OPERATOR_PROBE_PORT}/readyz`),
  );

  const examples = path.join(REPO_ROOT, 'examples');
  const files = (await readdir(examples)).filter((f) => f.endsWith('.yaml'));
  const tokens: string[] = [];
  for (const file of files) {
    const slug = path.basename(file, '.yaml');
    await step(`example tenant ${slug} to be Ready`, async () => {
      await kubectl(cluster, 'apply', '-f', path.join(examples, file));
      await waitUntil(
        `tenant ${slug} to be Ready`,
        async () => {
          const ready = await kubectl(
            cluster,
            'get',
            'tenant',
            slug,
            '-o',
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
          );
          return ready === 'True' ? true : undefined;
        },
        180_000,
      );
      const token = await kubectl(
        cluster,
        'get',
        'secret',
        '-n',
        NAMESPACE,
        `tenant-${slug}-setup-token`,
        '-o',
        'jsonpath={.data.token}',
      ).catch(() => '');
      tokens.push(
        `  ${slug}: ${token ? Buffer.from(token, 'base64').toString() : '(already used)'}`,
      );
    });
  }

  console.log(`
The platform is up. Data and logs are in ${DATA_DIR}.
  auth          http://127.0.0.1:${AUTH_PORT}
  organization  http://127.0.0.1:${ORGANIZATION_PORT}
  operator      http://127.0.0.1:${OPERATOR_PROBE_PORT}/metrics
  postgres      ${platform.postgres ? `127.0.0.1:${POSTGRES_PORT} (superuser password in .data/secrets.json)` : 'external'}
  kubernetes    export KUBECONFIG=${cluster.plane.kubeconfig}

First administrators' one-time setup tokens:
${tokens.join('\n')}

Walkthrough (the gateway is not part of the local platform yet, so name the tenant yourself
with X-Tenant-ID, as the gateway would):
  curl -s -XPOST localhost:${AUTH_PORT}/auth/setup -H 'X-Tenant-ID: acme' \\
    -H 'content-type: application/json' -d '{"token":"<acme token>","password":"<12+ characters>"}'
  curl -s -XPOST localhost:${AUTH_PORT}/auth/login -H 'X-Tenant-ID: acme' \\
    -H 'content-type: application/json' -d '{"email":"admin@acme.test","password":"<password>"}'
  curl -s localhost:${ORGANIZATION_PORT}/org/organizations -H 'X-Tenant-ID: acme' \\
    -H 'authorization: Bearer <accessToken>'

Logs: ${logDir}. Press Ctrl-C to stop everything.`);
}

async function down(platform: Platform): Promise<void> {
  await Promise.all([...platform.children].reverse().map((child) => child.stop()));
  await platform.cluster?.stop();
  await platform.db?.close();
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
