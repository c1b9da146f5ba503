/**
 * The local platform as a reusable whole: what `make up` runs, and what the end-to-end test
 * brings up in a temporary folder on free ports. Embedded PostgreSQL (or an external server),
 * the platform roles and migrations, a control plane with its local node, the CRDs, the auth
 * and organization services, the operator, Traefik in front of them and the example tenants.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import pg from 'pg';
import {
  databaseUrl,
  ensureRoles,
  migratePlatform,
  openDatabase,
  tenantSchema,
  type Database,
} from '@vextrus/migrations';
import { postgresCanReach, startPostgres, type RunningPostgres } from '../postgres.js';
import { REPO_ROOT } from '../testing/process.js';
import { loginUrl, silent } from '../testing/plane.js';
import { startCluster, waitUntil, type Cluster } from '../kube/cluster.js';
import { cachedToolPath } from '../kube/binaries.js';
import { applyLocalBackends } from '../gateway/backends.js';
import { startTraefik, type Gateway } from '../gateway/traefik.js';
import { startChild, waitHttpOk, type Child } from './children.js';
import { kubectl } from './kubectl.js';
import { loadOrCreateSecrets } from './secrets.js';
import { step } from './progress.js';

export const NAMESPACE = 'vextrus';
const DATABASE = 'vextrus';
const BUILD_SCRIPT = path.join(REPO_ROOT, 'tools/build-tools.sh');
/** What the local platform needs of the Go-built tools. */
export const PLATFORM_TOOLS = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kubectl',
  'traefik',
];

export interface LocalPlatformPorts {
  postgres: number;
  auth: number;
  organization: number;
  operatorProbes: number;
  gateway: number;
}

/** The ports of `make up`, as the README lists them. */
export const DEFAULT_PORTS: LocalPlatformPorts = {
  postgres: 55432,
  auth: 3001,
  organization: 3002,
  operatorProbes: 8081,
  gateway: 8080,
};

export interface LocalPlatformOptions {
  /** Data, keys, kubeconfig and logs; kept between runs. */
  dataDir: string;
  ports: LocalPlatformPorts;
  /** Apply every examples/*.yaml and wait until each is Ready (default true). */
  examples?: boolean;
  /** Runs each start-up step; by default prints it with its duration. */
  progress?: <T>(title: string, run: () => Promise<T>) => Promise<T>;
  /** Forwarded to the services and the operator (default info). */
  logLevel?: string;
  /**
   * `required` (default, make up): Traefik is built when missing and must start. `optional`
   * (tests): Traefik runs when it is in the tools cache and starts; otherwise the platform runs
   * without it and `gatewayProblem` says why.
   */
  gateway?: 'required' | 'optional';
}

export type SetupTokens = Record<string, string | undefined>;

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

/** Builds (first run: several minutes) or finds the Go-built tools, showing the build progress. */
async function buildTools(tools: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(BUILD_SCRIPT, tools);
    // Each build's line goes on a line of its own below the step's title, as it comes (a build
    // can take minutes between its "building …" and its "done"), and the step's verdict
    // ("ok (…)") on one after them.
    let printed = false;
    let lineEnded = true;
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      const body = text.endsWith('\n') ? text.slice(0, -1) : text;
      if (body !== '') {
        const indented = body.replaceAll('\n', '\n    ');
        process.stdout.write(lineEnded ? `\n    ${indented}` : indented);
        printed = true;
      }
      lineEnded = text.endsWith('\n') || (body === '' && lineEnded);
    });
    child.on('exit', (code) => {
      if (printed) process.stdout.write('\n  ');
      if (code === 0) resolve();
      else reject(new Error(`tools/build-tools.sh exited ${code}`));
    });
  });
}

/** Resolves once tenant `slug` reports Ready=True. */
export async function waitTenantReady(
  kubeconfig: string,
  slug: string,
  timeoutMs = 180_000,
): Promise<void> {
  const ready = 'jsonpath={.status.conditions[?(@.type=="Ready")].status}';
  await waitUntil(
    `tenant ${slug} to be Ready`,
    async () =>
      (await kubectl(kubeconfig, ['get', 'tenant', slug, '-o', ready])) === 'True'
        ? true
        : undefined,
    timeoutMs,
  );
}

/** The status code of GET `route` on `base` with the Host header `host` (fetch may not set it). */
function statusWithHost(base: string, route: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(route, base), { headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Resolves once the gateway at `base` routes `host` to the platform: a tenant is Ready as soon
 * as the operator has written its IngressRoute, and Traefik serves the route a moment later,
 * once its provider has synced; until then it answers 404 for the host.
 */
export async function waitRouted(base: string, host: string, timeoutMs = 60_000): Promise<void> {
  await waitUntil(
    `the gateway to route ${host}`,
    async () =>
      (await statusWithHost(base, '/.well-known/jwks.json', host).catch(() => 0)) === 200
        ? true
        : undefined,
    timeoutMs,
  );
}

/**
 * The first administrator's one-time setup token of `slug`, as the operator delivered it in its
 * Secret, or undefined when there is none. The Secret stays after the token is used.
 */
export async function readSetupToken(
  kubeconfig: string,
  slug: string,
): Promise<string | undefined> {
  const secret = `tenant-${slug}-setup-token`;
  const args = ['get', 'secret', '-n', NAMESPACE, secret, '-o', 'jsonpath={.data.token}'];
  const token = await kubectl(kubeconfig, args).catch(() => '');
  return token ? Buffer.from(token, 'base64').toString() : undefined;
}

/**
 * One run of the local platform. start() brings every part up in order; stop() (also while
 * start() is still running: the next step then fails) stops what was started, in reverse.
 */
export class LocalPlatform {
  readonly logDir: string;
  postgres?: RunningPostgres;
  cluster?: Cluster;
  gateway?: Gateway;
  /** Why Traefik does not run, when the gateway is optional and could not start. */
  gatewayProblem?: string;
  /** The owner role's URL (what the operator and the migrations CLI connect with). */
  ownerUrl = '';
  readonly children: Child[] = [];
  readonly setupTokens: SetupTokens = {};
  private db?: Database;
  private stopping = false;

  constructor(readonly options: LocalPlatformOptions) {
    this.logDir = path.join(options.dataDir, 'logs');
  }

  get kubeconfig(): string {
    return this.cluster?.plane.kubeconfig ?? '';
  }

  url(part: 'auth' | 'organization' | 'gateway'): string {
    return `http://127.0.0.1:${this.options.ports[part]}`;
  }

  private async step<T>(title: string, run: () => Promise<T>): Promise<T> {
    if (this.stopping) throw new Error(`stopped before ${title}`);
    return (this.options.progress ?? step)(title, run);
  }

  async start(): Promise<void> {
    const { dataDir } = this.options;
    await mkdir(this.logDir, { recursive: true });
    const secrets = await loadOrCreateSecrets(path.join(dataDir, 'secrets.json'));
    const adminUrl = await this.adminDatabaseUrl(secrets.postgresPassword);

    const db = openDatabase({ url: adminUrl, logger: silent });
    this.db = db;
    await this.step('database roles and platform migrations', async () => {
      await ensureRoles(db, {
        owner: secrets.ownerPassword,
        app: secrets.appPassword,
        retention: secrets.retentionPassword,
      });
      await migratePlatform(db);
    });
    this.ownerUrl = loginUrl(adminUrl, db.roles.owner, secrets.ownerPassword);
    await writeFile(path.join(dataDir, 'owner-database-url'), `${this.ownerUrl}\n`, {
      mode: 0o600,
    });
    const appUrl = loginUrl(adminUrl, db.roles.app, secrets.appPassword);

    const optionalGateway = this.options.gateway === 'optional';
    const tools = PLATFORM_TOOLS.filter((tool) => !optionalGateway || tool !== 'traefik');
    await this.step('Kubernetes tools and Traefik (built from Go modules on first use)', () =>
      buildTools(tools),
    );
    const cluster = await this.step('local control plane and node', () =>
      startCluster({ dir: path.join(dataDir, 'kube') }),
    );
    this.cluster = cluster;
    await this.step('CRDs, the vextrus namespace and the service endpoints', () =>
      this.applyPlatformObjects(),
    );

    await this.startServices(appUrl);
    await this.startOperator();
    await this.startGateway();
    if (this.options.examples !== false) await this.applyExamples();
  }

  private async startGateway(): Promise<void> {
    const optional = this.options.gateway === 'optional';
    const port = this.options.ports.gateway;
    try {
      this.gateway = await this.step(`Traefik gateway on 127.0.0.1:${port}`, async () => {
        const binary = optional ? await cachedToolPath('traefik') : undefined;
        if (optional && !binary) {
          throw new Error('traefik is not in the tools cache (tools/build-tools.sh traefik)');
        }
        return startTraefik({
          kubeconfig: this.kubeconfig,
          namespace: NAMESPACE,
          port,
          logDir: this.logDir,
          binary,
        });
      });
    } catch (err) {
      if (!optional || this.stopping) throw err;
      this.gatewayProblem = err instanceof Error ? err.message : String(err);
    }
  }

  /** Stops every part that runs, the last started first. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.gateway?.stop();
    await Promise.all([...this.children].reverse().map((child) => child.stop()));
    await this.cluster?.stop();
    await this.db?.close();
    await this.postgres?.stop();
  }

  /** Resolves with the name and exit status of the first part that exits by itself. */
  firstExit(): Promise<{ name: string; code: number | string; tail: () => Promise<string> }> {
    const exits = this.children.map((child) =>
      child.exited.then((code) => ({ name: child.name, code, tail: () => child.tail() })),
    );
    const gateway = this.gateway?.process;
    if (gateway) {
      exits.push(
        gateway.exited.then((code) => ({
          name: 'traefik',
          code,
          tail: () => Promise.resolve(gateway.tail.text()),
        })),
      );
    }
    return Promise.race(exits);
  }

  private async adminDatabaseUrl(password: string): Promise<string> {
    if (externalDatabase()) return databaseUrl(process.env);
    const { dataDir, ports } = this.options;
    let postgresDir = path.join(dataDir, 'postgres');
    if (!postgresCanReach(postgresDir)) {
      // As root, PostgreSQL runs as the postgres user, who cannot enter a clone under /root or
      // another closed folder: keep this clone's database in a folder of its own under /var/lib.
      // The default data folder keeps the id it always had (a hash of the clone's folder).
      const key = dataDir === path.join(REPO_ROOT, '.data') ? REPO_ROOT : dataDir;
      const id = createHash('sha256').update(key).digest('hex').slice(0, 12);
      postgresDir = path.join('/var/lib/vextrus', `postgres-${id}`);
      process.stdout.write(
        `  (the postgres user cannot enter ${dataDir}; the database lives in ${postgresDir})\n`,
      );
    }
    const postgres = await this.step(`PostgreSQL on 127.0.0.1:${ports.postgres}`, () =>
      startPostgres({ dataDir: postgresDir, password, port: ports.postgres }),
    );
    this.postgres = postgres;
    await this.step(`database "${DATABASE}"`, () => ensureDatabase(postgres.url()));
    return postgres.url(DATABASE);
  }

  private async applyPlatformObjects(): Promise<void> {
    const kubeconfig = this.kubeconfig;
    await kubectl(kubeconfig, [
      'apply',
      '--server-side',
      '-f',
      path.join(REPO_ROOT, 'charts/vextrus/crds'),
    ]);
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
      const child = spawn(BUILD_SCRIPT, ['--traefik-crds']);
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.on('exit', (code) =>
        code === 0 ? resolve({ stdout: out }) : reject(new Error('cannot find the Traefik CRDs')),
      );
    });
    await kubectl(kubeconfig, ['apply', '--server-side', '-f', stdout.trim()]);
    await kubectl(kubeconfig, ['create', 'namespace', NAMESPACE]).catch(() => '');
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'vextrus-database-owner', namespace: NAMESPACE },
      stringData: { DATABASE_URL: this.ownerUrl },
    };
    await kubectl(kubeconfig, ['apply', '-f', '-'], JSON.stringify(secret));
    const { auth, organization } = this.options.ports;
    await applyLocalBackends(kubeconfig, NAMESPACE, [
      { name: 'vextrus-auth', port: auth },
      { name: 'vextrus-organization', port: organization },
    ]);
  }

  private async startServices(appUrl: string): Promise<void> {
    const { dataDir, ports } = this.options;
    const env = {
      DATABASE_URL: appUrl,
      HOST: '127.0.0.1',
      LOG_LEVEL: this.options.logLevel ?? 'info',
      AUTH_LOCAL_KEYS_DIR: path.join(dataDir, 'keys'),
      AUTH_JWKS_URL: `${this.url('auth')}/.well-known/jwks.json`,
    };
    const services = [
      { name: 'auth', entry: 'services/auth/src/main.ts', port: ports.auth },
      {
        name: 'organization',
        entry: 'services/organization/src/main.ts',
        port: ports.organization,
      },
    ];
    for (const service of services) {
      const child = startChild(
        service.name,
        service.entry,
        { ...env, PORT: String(service.port) },
        this.logDir,
      );
      this.children.push(child);
      await this.step(`${service.name} service on 127.0.0.1:${service.port}`, () =>
        waitHttpOk(child, `http://127.0.0.1:${service.port}/health/ready`),
      );
    }
  }

  private async startOperator(): Promise<void> {
    const port = this.options.ports.operatorProbes;
    const operator = startChild(
      'operator',
      'operator/src/main.ts',
      {
        KUBECONFIG: this.kubeconfig,
        DATABASE_URL: this.ownerUrl,
        LOG_LEVEL: this.options.logLevel ?? 'info',
        OPERATOR_NAMESPACE: NAMESPACE,
        MIGRATIONS_IMAGE: 'vextrus/migrations:local',
        AUTH_SERVICE: `vextrus-auth:${this.options.ports.auth}`,
        ORGANIZATION_SERVICE: `vextrus-organization:${this.options.ports.organization}`,
        PROBE_PORT: String(port),
        RESYNC_SECONDS: '30',
        LEADER_ELECTION: 'false',
      },
      this.logDir,
    );
    this.children.push(operator);
    await this.step(`operator (probes on 127.0.0.1:${port})`, () =>
      waitHttpOk(operator, `http://127.0.0.1:${port}/readyz`),
    );
  }

  /**
   * The setup token of `slug` while it can still be exchanged for a password: not used, revoked
   * or expired (the tenant's one_time_tokens, which hold its SHA-256 only).
   */
  async usableSetupToken(slug: string): Promise<string | undefined> {
    const token = await readSetupToken(this.kubeconfig, slug);
    if (!token || !this.db) return token;
    const [rows] = await this.db.sequelize.query(
      `SELECT 1 FROM ${tenantSchema(slug)}.one_time_tokens
        WHERE token_hash = $1 AND purpose = 'setup' AND used_at IS NULL AND revoked_at IS NULL
          AND expires_at > now()`,
      { bind: [createHash('sha256').update(token).digest()] },
    );
    return rows.length > 0 ? token : undefined;
  }

  /** Applies every example tenant at once, then waits for each to be Ready. */
  private async applyExamples(): Promise<void> {
    const examples = path.join(REPO_ROOT, 'examples');
    const slugs = (await readdir(examples))
      .filter((file) => file.endsWith('.yaml'))
      .map((file) => path.basename(file, '.yaml'));
    const routed = this.gateway ? ' and routed' : '';
    await this.step(`example tenants ${slugs.join(', ')} to be Ready${routed}`, async () => {
      await kubectl(this.kubeconfig, ['apply', '-f', examples]);
      await Promise.all(slugs.map((slug) => waitTenantReady(this.kubeconfig, slug)));
      for (const slug of slugs) {
        this.setupTokens[slug] = await this.usableSetupToken(slug);
      }
      // What the closing lines tell the user to try must work at once, through the gateway too.
      if (!this.gateway) return;
      for (const slug of slugs) {
        const hosts = await kubectl(this.kubeconfig, [
          'get',
          'tenant',
          slug,
          '-o',
          'jsonpath={.spec.hosts[*]}',
        ]);
        for (const host of hosts.split(' ').filter((h) => h.length > 0)) {
          await waitRouted(this.url('gateway'), host);
        }
      }
    });
  }
}
