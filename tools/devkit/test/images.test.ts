import { expect } from 'chai';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cachedToolPath, createPlane, REPO_ROOT } from '@vextrus/devkit';

/*
 * No Docker engine runs here, so this test reproduces each image's runtime stage in a temporary
 * folder by reading its Dockerfile: the `production-deps` stage's COPY lines and `npm ci` (offline,
 * from the npm cache that `make install` filled), the `runtime` stage's COPY lines (from that
 * folder and from the repository after `npm run build`, which is what the `build` stage makes),
 * then runs the ENTRYPOINT there with plain `node` (no tsx, no source condition). A module that
 * the layout lacks fails the start.
 *
 * Each layout starts twice: under the Node that runs the tests and under Node 24, the version the
 * images run (node:24-bookworm-slim), from the pinned binary of `tools/build-tools.sh node24`.
 * The organization service's layout also starts under Node 24 against a real test database, and
 * must answer GET /health/ready.
 */

const run = promisify(execFile);

interface Instruction {
  op: string;
  args: string;
}

interface Stage {
  name: string;
  workdir: string;
  instructions: Instruction[];
}

/** The stages of a Dockerfile, each with its instructions (continuation lines joined). */
function parseDockerfile(text: string): Map<string, Stage> {
  const stages = new Map<string, Stage>();
  let current: Stage | undefined;
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const line of lines) {
    const match = /^([A-Z]+)\s+(.*)$/.exec(line.trim());
    if (!match || line.trim().startsWith('#')) continue;
    const [, op = '', args = ''] = match;
    if (op === 'FROM') {
      const name = /\bAS\s+(\S+)$/i.exec(args)?.[1] ?? '';
      current = { name, workdir: '/', instructions: [] };
      stages.set(name, current);
    } else if (current) {
      if (op === 'WORKDIR') current.workdir = args;
      current.instructions.push({ op, args });
    }
  }
  return stages;
}

/**
 * Copies like Docker's COPY: a folder's content into dest, links kept as links. What comes from
 * the production-deps stage is copied as hard links (same content, much less disk work).
 */
function copy(from: string, to: string, hardLinks = false): void {
  if (!existsSync(from)) throw new Error(`COPY source ${from} does not exist`);
  const target =
    to.endsWith('/') && !lstatSync(from).isDirectory() ? path.join(to, path.basename(from)) : to;
  mkdirSync(path.dirname(target), { recursive: true });
  if (hardLinks && !existsSync(target)) execFileSync('cp', ['-al', from, target]);
  else cpSync(from, target, { recursive: true, verbatimSymlinks: true });
}

/** Every symbolic link under a folder whose target does not exist (or leaves the folder). */
function brokenLinks(root: string): string[] {
  const broken: string[] = [];
  const walk = (dir: string, depth: number): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isSymbolicLink()) {
        const target = path.resolve(dir, readlinkSync(full));
        if (!existsSync(target) || !target.startsWith(root + path.sep)) {
          broken.push(`${path.relative(root, full)} -> ${readlinkSync(full)}`);
        }
      } else if (entry.isDirectory() && depth < 3) {
        walk(full, depth + 1);
      }
    }
  };
  walk(path.join(root, 'node_modules'), 0);
  return broken;
}

interface Layout {
  root: string;
  entrypoint: string[];
  user: string;
}

/**
 * The production-deps stage's folder: its COPY lines and its `npm ci` (offline, from the npm
 * cache that `make install` filled; nothing reaches the registry from a test). Like Docker's layer
 * cache, the result is kept under ~/.cache/vextrus/image-deps, keyed by the stage's instructions
 * and the content of every file it copies, so a later run with the same inputs skips the install.
 */
async function productionDeps(dockerfile: string, stage: Stage, dir: string): Promise<string> {
  const hash = createHash('sha256').update(process.version);
  for (const { op, args } of stage.instructions) {
    hash.update(`${op} ${args}\n`);
    if (op !== 'COPY') continue;
    for (const source of args.split(/\s+/).slice(0, -1)) {
      hash.update(readFileSync(path.join(REPO_ROOT, source)));
    }
  }
  const cacheRoot = path.join(
    process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'),
    'vextrus',
    'image-deps',
  );
  const cached = path.join(cacheRoot, hash.digest('hex').slice(0, 24));
  if (existsSync(path.join(cached, 'node_modules'))) return cached;

  const depsDir = path.join(dir, 'deps');
  for (const { op, args } of stage.instructions) {
    const words = args.split(/\s+/);
    if (op === 'COPY') {
      const dest = words.pop() ?? '';
      for (const source of words) copy(path.join(REPO_ROOT, source), path.join(depsDir, dest));
    } else if (op === 'RUN') {
      expect(words.slice(0, 2), `${dockerfile}: production-deps runs npm ci`).to.deep.equal([
        'npm',
        'ci',
      ]);
      await run('npm', [...words.slice(1), '--offline'], { cwd: depsDir, timeout: 300_000 });
    }
  }
  mkdirSync(cacheRoot, { recursive: true });
  try {
    // Into place in one step, so an interrupted run leaves nothing half-installed behind.
    renameSync(depsDir, cached);
  } catch {
    return depsDir; // another run put the same result there first
  }
  return cached;
}

/** Builds the runtime stage of `dockerfile` under `dir`, as the Dockerfile says. */
async function reproduce(dockerfile: string, dir: string): Promise<Layout> {
  const stages = parseDockerfile(readFileSync(path.join(REPO_ROOT, dockerfile), 'utf8'));
  const deps = stages.get('production-deps');
  const runtime = stages.get('runtime');
  if (!deps || !runtime)
    throw new Error(`${dockerfile} needs the stages production-deps and runtime`);
  const depsDir = await productionDeps(dockerfile, deps, dir);
  const roots: Record<string, { workdir: string; dir: string }> = {
    build: { workdir: stages.get('build')?.workdir ?? '/src', dir: REPO_ROOT },
    'production-deps': { workdir: deps.workdir, dir: depsDir },
  };
  const inStage = (stage: string, file: string): string => {
    const where = roots[stage];
    if (!where) throw new Error(`COPY --from=${stage}: unknown stage`);
    return path.join(where.dir, path.relative(where.workdir, file));
  };

  const root = path.join(dir, 'app');
  let entrypoint: string[] = [];
  let user = '';
  for (const { op, args } of runtime.instructions) {
    const words = args.split(/\s+/);
    if (op === 'COPY') {
      const from = /^--from=(\S+)$/.exec(words[0] ?? '')?.[1];
      expect(from, `${dockerfile}: the runtime stage copies only from other stages`).to.be.a(
        'string',
      );
      const dest = words.pop() ?? '';
      const target = path.join(
        root,
        path.relative(runtime.workdir, path.resolve(runtime.workdir, dest)),
      );
      for (const source of words.slice(1)) {
        const slash = dest.endsWith('/') ? '/' : '';
        copy(inStage(from ?? '', source), target + slash, from === 'production-deps');
      }
    } else if (op === 'ENTRYPOINT') {
      entrypoint = JSON.parse(args) as string[];
    } else if (op === 'USER') {
      user = args;
    } else if (op === 'RUN') {
      throw new Error(`${dockerfile}: the runtime stage runs nothing (${args})`);
    }
  }
  return {
    root,
    user,
    entrypoint: entrypoint.map((word) =>
      word.startsWith(`${runtime.workdir}/`)
        ? path.join(root, path.relative(runtime.workdir, word))
        : word,
    ),
  };
}

/**
 * The Node 24 binary of `tools/build-tools.sh node24`, from the tools cache. A test never fetches
 * it (nothing reaches a registry from a test): when it is missing, the test fails and says how to
 * get it.
 */
async function node24(): Promise<string> {
  const binary = await cachedToolPath('node24');
  if (!binary) {
    throw new Error(
      'the Node 24 binary is not in the tools cache: run `make test-tools` ' +
        '(or tools/build-tools.sh node24) first',
    );
  }
  const { stdout } = await run(binary, ['--version']);
  expect(stdout.trim(), `${binary} --version`).to.match(/^v24\./);
  return binary;
}

/** The Node versions each layout starts under: this one, and the one the images run. */
const RUNTIMES = [
  { name: `this Node (${process.version})`, node: () => Promise.resolve(process.execPath) },
  { name: 'Node 24 (tools/build-tools.sh node24)', node: node24 },
];

/** Runs the image's entrypoint with `node` = the given Node; the exit code and all output. */
async function start(
  layout: Layout,
  args: string[],
  env: NodeJS.ProcessEnv,
  node = process.execPath,
): Promise<{ code: number; output: string }> {
  const [command, ...rest] = layout.entrypoint;
  expect(command).to.equal('node');
  try {
    const { stdout, stderr } = await run(node, [...rest, ...args], {
      cwd: layout.root,
      env: { PATH: process.env.PATH, NODE_ENV: 'production', ...env },
      timeout: 60_000,
    });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const failure = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failure.code === 'number' ? failure.code : -1,
      output: `${failure.stdout ?? ''}${failure.stderr ?? ''}`,
    };
  }
}

const IMAGES = [
  { dockerfile: 'services/auth/Dockerfile', ws: 'services/auth', code: 78 },
  { dockerfile: 'services/organization/Dockerfile', ws: 'services/organization', code: 78 },
  { dockerfile: 'operator/Dockerfile', ws: 'operator', code: 78 },
  { dockerfile: 'migrations/Dockerfile', ws: 'migrations', code: 1 },
];

const MISSING_MODULE = /ERR_MODULE_NOT_FOUND|Cannot find (module|package)/;

describe('container images (runtime layouts reproduced from the Dockerfiles, no Docker engine)', function () {
  // One build of every workspace and an offline npm ci per image, on 2 busy cores.
  this.timeout(600_000);
  let dir: string;
  const layouts = new Map<string, Layout>();

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'vextrus-images-'));
    await run('npm', ['run', 'build'], { cwd: REPO_ROOT, timeout: 300_000 });
    // The four installs wait mostly on the disk, so they run side by side.
    await Promise.all(
      IMAGES.map(async (image) => {
        const where = path.join(dir, image.ws.replace('/', '-'));
        layouts.set(image.dockerfile, await reproduce(image.dockerfile, where));
      }),
    );
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const image of IMAGES) {
    describe(image.dockerfile, () => {
      const layout = (): Layout => {
        const found = layouts.get(image.dockerfile);
        if (!found) throw new Error(`no layout for ${image.dockerfile}`);
        return found;
      };

      it('runs as a numeric non-root user', () => {
        expect(layout().user).to.match(/^[1-9][0-9]*(:[1-9][0-9]*)?$/);
      });

      it('holds production dependencies only, and every workspace link points at a copied folder', () => {
        const root = layout().root;
        expect(brokenLinks(root)).to.deep.equal([]);
        for (const dev of ['typescript', 'mocha', 'tsx', 'eslint', '@vextrus/devkit']) {
          expect(existsSync(path.join(root, 'node_modules', dev)), dev).to.equal(false);
        }
        expect(existsSync(path.join(root, image.ws, 'src')), 'no sources').to.equal(false);
      });

      for (const runtime of RUNTIMES) {
        it(`starts from the layout with plain node under ${runtime.name}, loading every module it imports`, async () => {
          const outcome = await start(layout(), [], {}, await runtime.node());

          expect(outcome.output).to.not.match(MISSING_MODULE);
          expect(outcome.code, outcome.output).to.equal(image.code);
          if (image.ws === 'migrations') {
            expect(outcome.output).to.include('usage:');
            expect(outcome.output).to.include('vextrus-migrate roles ensure');
          } else {
            // Without database configuration it names what is missing and exits 78 (EX_CONFIG).
            expect(outcome.output).to.include('DATABASE_');
          }
        });
      }

      if (image.ws === 'services/organization') {
        it('under Node 24, with a real database, answers GET /health/ready with 200 on 127.0.0.1', async () => {
          await serveReadyUnderNode24(layout());
        });
      }

      if (image.ws === 'migrations') {
        it('when a workspace it imports is missing from the layout, the start fails (the check can fail)', async () => {
          rmSync(path.join(layout().root, 'services', 'shared', 'dist'), { recursive: true });

          const outcome = await start(layout(), [], {});

          expect(outcome.output).to.match(MISSING_MODULE);
          expect(outcome.output).to.not.include('usage:');
        });
      }
    });
  }
});

/**
 * Starts the organization service's layout under Node 24 with a test database (platform roles and
 * migrations applied; it logs in as the application role, which its start-up check requires),
 * waits for its "listening" log line, asks GET /health/ready on 127.0.0.1, then stops it with
 * SIGTERM and expects a clean exit. Its JWKS URL is a loopback port that nothing asks: keys are
 * fetched only for a request that carries a token.
 */
async function serveReadyUnderNode24(layout: Layout): Promise<void> {
  const node = await node24();
  const plane = await createPlane('images_node24');
  const [command, ...rest] = layout.entrypoint;
  expect(command).to.equal('node');
  const child = spawn(node, rest, {
    cwd: layout.root,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      DATABASE_URL: plane.appUrl,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      AUTH_JWKS_URL: 'http://127.0.0.1:9/.well-known/jwks.json',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no "listening" line in 60 s:\n${output}`)),
        60_000,
      );
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        for (const line of output.split('\n')) {
          const entry = parseJson(line);
          if (entry?.msg === 'listening' && typeof entry.port === 'number') {
            clearTimeout(timer);
            resolve(entry.port);
          }
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`the service exited (${code}) before listening:\n${output}`));
      });
    });

    const response = await fetch(`http://127.0.0.1:${port}/health/ready`);
    const body = (await response.json()) as { status?: string };
    expect(response.status, JSON.stringify(body)).to.equal(200);
    expect(body.status).to.equal('ready');

    child.kill('SIGTERM');
    expect(await exited, output).to.equal(0);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    await plane.close();
  }
}

/** One log line as an object, or undefined when it is not JSON. */
function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
