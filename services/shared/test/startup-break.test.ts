import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  createPlane,
  freePort,
  spawnTs,
  type SpawnedProcess,
  type TestPlane,
} from '@vextrus/devkit';
import { databaseUrl, openDatabase } from '@vextrus/migrations';
import { ConfigError, EnvReader, loadServiceConfig } from '@vextrus/shared';
import { readOperatorSettings } from '@vextrus/operator';

/*
 * Attempts to break how the real service processes start, read their configuration and stop:
 * each case spawns auth or organization (or the operator) as a process, on 127.0.0.1, against
 * the PostgreSQL of the test run, and looks at its exit status and its log lines.
 */

const SERVICES = [
  { name: 'auth', entry: 'services/auth/src/main.ts' },
  { name: 'organization', entry: 'services/organization/src/main.ts' },
] as const;

/** A password with every character that needs care in a URL. */
const AWKWARD_PASSWORD = 'p@ss:w/rd%20?#&=+ é';

interface Parts {
  host: string;
  port: string;
  user: string;
  password: string;
  name: string;
}

async function waitReady(url: string, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(`${url}/health/ready`);
      if (response.status === 200 || Date.now() > deadline) return response.status;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The process's output as lines (each must be one JSON log line). */
function lines(child: SpawnedProcess): string[] {
  return child
    .output()
    .split('\n')
    .filter((line) => line.trim() !== '');
}

/** Asserts the one-line, stack-free, secret-free refusal of a bad configuration. */
function expectOneClearLine(child: SpawnedProcess, secret: string, mention: RegExp): void {
  const output = lines(child);
  expect(output, child.output()).to.have.length(1);
  const line = JSON.parse(output[0] ?? '{}') as Record<string, unknown>;
  expect(line.level).to.equal('fatal');
  expect(String(line.msg)).to.match(mention);
  expect(child.output()).not.to.include(secret);
  expect(child.output()).not.to.include(encodeURIComponent(secret));
  expect(child.output(), 'no stack trace').not.to.match(/\s+at .+:\d+:\d+/);
}

/**
 * A request whose body is still arriving: the server has its headers (the request is in flight)
 * and waits for the rest, which `finish` sends.
 */
function slowRequest(
  port: number,
  requestPath: string,
  body: string,
): { socket: Socket; finish(): void; response: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  const head =
    `POST ${requestPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `X-Tenant-ID: nobody\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  socket.write(head + body.slice(0, 1));
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  const response = new Promise<string>((resolve) => {
    socket.on('close', () => resolve(received));
    socket.on('error', () => undefined);
  });
  return { socket, finish: () => socket.write(body.slice(1)), response };
}

/** Forwards TCP connections from [::1] to PostgreSQL on 127.0.0.1, counting them. */
async function ipv6Forwarder(
  target: number,
): Promise<{ port: number; count(): number; close(): void }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((incoming) => {
    connections += 1;
    const outgoing = connect(target, '127.0.0.1');
    sockets.add(incoming).add(outgoing);
    incoming.pipe(outgoing).pipe(incoming);
    incoming.on('error', () => outgoing.destroy());
    outgoing.on('error', () => incoming.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    count: () => connections,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Waits until a query of `user` waits on a lock. */
async function waitForLockWait(client: pg.Client, user: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE usename = $1 AND wait_event_type = 'Lock'`,
      [user],
    );
    if ((rows[0]?.n ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no query waited on the lock');
}

describe('start-up and shutdown of the real processes (break attempts)', function () {
  this.timeout(90_000);
  let plane: TestPlane;
  let parts: Parts;
  const keys = { AUTH_LOCAL_KEYS_DIR: mkdtempSync(path.join(tmpdir(), 'vextrus-keys-')) };
  const children: SpawnedProcess[] = [];

  function spawn(entry: string, env: NodeJS.ProcessEnv): SpawnedProcess {
    const child = spawnTs(entry, { ...keys, HOST: '127.0.0.1', ...env });
    children.push(child);
    return child;
  }

  before(async () => {
    plane = await createPlane('startup_break');
    const url = new URL(plane.appUrl);
    parts = {
      host: url.hostname,
      port: url.port,
      user: url.username,
      password: AWKWARD_PASSWORD,
      name: plane.database.name,
    };
    // The application role gets a password that only survives correct URL encoding.
    await plane.db.sequelize.query(`ALTER ROLE "${parts.user}" PASSWORD :password`, {
      replacements: { password: AWKWARD_PASSWORD },
    });
  });

  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.child.exitCode === null && child.child.signalCode === null) {
        child.child.kill('SIGKILL');
        await child.exited;
      }
    }
  });

  after(() => plane.close());

  const encoded = (): string =>
    `${encodeURIComponent(parts.user)}:${encodeURIComponent(parts.password)}`;

  for (const { name, entry } of SERVICES) {
    describe(`${name}: configuration`, () => {
      it('starts with a postgresql:// URL whose password needs percent-encoding', async () => {
        const port = await freePort();
        const child = spawn(entry, {
          DATABASE_URL:
            `postgresql://${encoded()}@${parts.host}:${parts.port}/${parts.name}` +
            '?sslmode=disable&application_name=ignored',
          PORT: String(port),
        });
        expect(await waitReady(`http://127.0.0.1:${port}`), child.output()).to.equal(200);
        expect(child.output()).not.to.include(AWKWARD_PASSWORD);
        expect(child.output()).not.to.include(encodeURIComponent(AWKWARD_PASSWORD));
        child.child.kill('SIGTERM');
        expect(await child.exited).to.equal(0);
      });

      it('starts with the five DATABASE_* parts and no URL', async () => {
        const port = await freePort();
        const child = spawn(entry, {
          DATABASE_HOST: parts.host,
          DATABASE_PORT: parts.port,
          DATABASE_USERNAME: parts.user,
          DATABASE_PASSWORD: parts.password,
          DATABASE_NAME: parts.name,
          PORT: String(port),
        });
        expect(await waitReady(`http://127.0.0.1:${port}`), child.output()).to.equal(200);
        expect(child.output()).to.include('"source":"DATABASE_* variables"');
        child.child.kill('SIGTERM');
        expect(await child.exited).to.equal(0);
      });

      it('reaches PostgreSQL at the IPv6 loopback [::1] of a URL', async () => {
        const forwarder = await ipv6Forwarder(Number(parts.port));
        try {
          const port = await freePort();
          const child = spawn(entry, {
            DATABASE_URL: `postgres://${encoded()}@[::1]:${forwarder.port}/${parts.name}`,
            PORT: String(port),
          });
          expect(await waitReady(`http://127.0.0.1:${port}`), child.output()).to.equal(200);
          expect(forwarder.count()).to.be.above(0);
          child.child.kill('SIGTERM');
          expect(await child.exited).to.equal(0);
        } finally {
          forwarder.close();
        }
      });

      it('refuses a DATABASE_URL with a broken percent-encoding: exit 78, one line, no secret', async () => {
        const secret = 'hunter2-very-secret';
        const child = spawn(entry, {
          DATABASE_URL: `postgres://${parts.user}:%ZZ${secret}@${parts.host}:${parts.port}/x`,
        });
        expect(await child.exited, child.output()).to.equal(78);
        expectOneClearLine(child, secret, /DATABASE_URL/);
      });
    });

    describe(`${name}: shutdown`, () => {
      async function started(env: NodeJS.ProcessEnv = {}): Promise<{
        child: SpawnedProcess;
        port: number;
      }> {
        const port = await freePort();
        const child = spawn(entry, {
          DATABASE_URL: `postgres://${encoded()}@${parts.host}:${parts.port}/${parts.name}`,
          PORT: String(port),
          ...env,
        });
        expect(await waitReady(`http://127.0.0.1:${port}`), child.output()).to.equal(200);
        return { child, port };
      }

      const body = JSON.stringify({ email: 'a@b.example', password: 'not the right one' });

      it('on SIGTERM lets an in-flight request finish, refuses new connections, exits 0', async () => {
        const { child, port } = await started({ SHUTDOWN_TIMEOUT_MS: '8000' });
        const slow = slowRequest(port, '/auth/login', body);
        await new Promise((resolve) => setTimeout(resolve, 200));

        const signalled = Date.now();
        child.child.kill('SIGTERM');
        await child.waitForOutput((output) => output.includes('shutting down'));
        await new Promise((resolve) => setTimeout(resolve, 300));
        const refused = await fetch(`http://127.0.0.1:${port}/health/live`).catch(
          (err: Error) => err,
        );
        slow.finish();
        const finished = Date.now();
        const response = await slow.response;
        const code = await child.exited;
        // The drain must not wait for the keep-alive timeout (5 s) of the answered connection.
        const closedAfter = Date.now() - finished;

        expect(refused).to.be.instanceOf(Error);
        expect(response, child.output()).to.match(/^HTTP\/1\.1 \d{3} /);
        expect(response.toLowerCase()).to.include('connection: close');
        expect(closedAfter).to.be.below(3000);
        expect(code, child.output()).to.equal(0);
        expect(Date.now() - signalled).to.be.below(8000);
        expect(child.output()).to.include('"msg":"stopped"');
      });

      it('a second SIGTERM during the drain does not cut the in-flight request', async () => {
        const { child, port } = await started({ SHUTDOWN_TIMEOUT_MS: '8000' });
        const slow = slowRequest(port, '/auth/login', body);
        await new Promise((resolve) => setTimeout(resolve, 200));

        child.child.kill('SIGTERM');
        await child.waitForOutput((output) => output.includes('shutting down'));
        child.child.kill('SIGTERM');
        await new Promise((resolve) => setTimeout(resolve, 300));
        slow.finish();
        const response = await slow.response;

        expect(response, child.output()).to.match(/^HTTP\/1\.1 \d{3} /);
        expect(await child.exited, child.output()).to.equal(0);
      });

      it('SIGINT then SIGTERM drain once and exit 0', async () => {
        const { child, port } = await started({ SHUTDOWN_TIMEOUT_MS: '8000' });
        const slow = slowRequest(port, '/auth/login', body);
        await new Promise((resolve) => setTimeout(resolve, 200));

        child.child.kill('SIGINT');
        await child.waitForOutput((output) => output.includes('shutting down'));
        child.child.kill('SIGTERM');
        await new Promise((resolve) => setTimeout(resolve, 300));
        slow.finish();

        expect(await slow.response, child.output()).to.match(/^HTTP\/1\.1 \d{3} /);
        expect(await child.exited, child.output()).to.equal(0);
      });

      it('reports not ready while SHUTDOWN_DELAY_MS runs, then closes the listener', async () => {
        const { child, port } = await started({ SHUTDOWN_DELAY_MS: '1500' });
        child.child.kill('SIGTERM');
        await child.waitForOutput((output) => output.includes('shutting down'));

        const during = await fetch(`http://127.0.0.1:${port}/health/ready`);
        const checks = (await during.json()) as { checks: Record<string, string> };
        expect(during.status).to.equal(503);
        expect(checks.checks).to.deep.equal({ shutdown: 'in progress' });
        expect(during.headers.get('connection')).to.equal('close');
        expect(await child.exited, child.output()).to.equal(0);
      });

      it('cuts a request that outlives SHUTDOWN_TIMEOUT_MS and still exits 0 in time', async () => {
        const { child, port } = await started({ SHUTDOWN_TIMEOUT_MS: '1000' });
        const slow = slowRequest(port, '/auth/login', body);
        await new Promise((resolve) => setTimeout(resolve, 200));

        const signalled = Date.now();
        child.child.kill('SIGTERM');
        const code = await child.exited;

        expect(code, child.output()).to.equal(0);
        expect(Date.now() - signalled).to.be.below(5000);
        expect(await slow.response).to.equal('');
        expect(child.output()).to.include('in-flight requests cut at shutdown deadline');
      });
    });

    // Only through the auth service, which looks the tenant up before any token is needed; the
    // organization service authenticates first, and runs the same shutdown code.
    if (name === 'auth')
      describe(`${name}: shutdown with a query stuck in PostgreSQL`, () => {
        it('exits within its bound although a request holds a connection waiting on a lock', async () => {
          const port = await freePort();
          const child = spawn(entry, {
            DATABASE_URL: `postgres://${encoded()}@${parts.host}:${parts.port}/${parts.name}`,
            PORT: String(port),
            SHUTDOWN_TIMEOUT_MS: '1000',
          });
          expect(await waitReady(`http://127.0.0.1:${port}`), child.output()).to.equal(200);
          // The owner holds the tenant registry: the service's tenant lookup waits on it.
          const owner = new pg.Client({ connectionString: plane.database.url });
          await owner.connect();
          try {
            await owner.query('BEGIN');
            await owner.query('LOCK TABLE platform.tenants IN ACCESS EXCLUSIVE MODE');
            const stuck = fetch(`http://127.0.0.1:${port}/auth/login`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-tenant-id': 'acme' },
              body: JSON.stringify({ email: 'a@b.example', password: 'whatever it is' }),
            }).catch((err: Error) => err);
            await waitForLockWait(owner, parts.user);

            const signalled = Date.now();
            child.child.kill('SIGTERM');
            const timer = setTimeout(() => child.child.kill('SIGKILL'), 20_000);
            const code = await child.exited;
            clearTimeout(timer);

            expect(code, child.output()).to.equal(0);
            expect(Date.now() - signalled, child.output()).to.be.below(5_000);
            await stuck;
          } finally {
            await owner.query('ROLLBACK').catch(() => undefined);
            await owner.end();
          }
        });
      });

    describe(`${name}: a port it cannot listen on`, () => {
      it('exits 1 with one line naming the address when PORT is taken', async () => {
        const taken = createServer();
        await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
        const address = taken.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        try {
          const child = spawn(entry, {
            DATABASE_URL: `postgres://${encoded()}@${parts.host}:${parts.port}/${parts.name}`,
            PORT: String(port),
          });
          expect(await child.exited, child.output()).to.equal(1);
          const fatal = lines(child).filter((line) => line.includes('"level":"fatal"'));
          expect(fatal, child.output()).to.have.length(1);
          const line = JSON.parse(fatal[0] ?? '{}') as Record<string, unknown>;
          expect(line.code).to.equal('LISTEN_FAILED');
          expect(String(line.msg)).to.include(`127.0.0.1:${port}`);
          expect(child.output(), 'no stack trace').not.to.match(/\s+at .+:\d+:\d+/);
        } finally {
          taken.close();
        }
      });
    });

    describe(`${name}: PostgreSQL unreachable at start-up`, () => {
      it('with nothing listening, exits 1 at once with one line that names the server', async () => {
        const port = await freePort();
        const started = Date.now();
        const child = spawn(entry, {
          DATABASE_URL: `postgres://${encoded()}@127.0.0.1:${port}/${parts.name}`,
        });
        expect(await child.exited, child.output()).to.equal(1);
        expect(Date.now() - started).to.be.below(15_000);
        const fatal = lines(child).filter((line) => line.includes('"level":"fatal"'));
        expect(fatal, child.output()).to.have.length(1);
        const line = JSON.parse(fatal[0] ?? '{}') as Record<string, unknown>;
        // Not UNSAFE_DATABASE_ROLE: nothing is known about the role of a server never reached.
        expect(line.code).to.equal('DATABASE_UNAVAILABLE');
        expect(String(line.msg)).to.include(`127.0.0.1:${port}`);
        expect(child.output()).not.to.include(AWKWARD_PASSWORD);
        expect(child.output(), 'no stack trace').not.to.match(/\s+at .+:\d+:\d+/);
      });

      it('with a server that accepts but never answers, fails within bounded time', async () => {
        const held: Socket[] = [];
        const hole = createServer((socket) => held.push(socket));
        await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
        const address = hole.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        try {
          const started = Date.now();
          const child = spawn(entry, {
            DATABASE_URL: `postgres://${encoded()}@127.0.0.1:${port}/${parts.name}`,
          });
          const timer = setTimeout(() => child.child.kill('SIGKILL'), 30_000);
          const code = await child.exited;
          clearTimeout(timer);

          expect(code, child.output()).to.equal(1);
          expect(Date.now() - started).to.be.below(25_000);
          expect(child.output()).to.include('DATABASE_UNAVAILABLE');
        } finally {
          for (const socket of held) socket.destroy();
          hole.close();
        }
      });
    });

    describe(`${name}: tracing`, () => {
      it('refuses an OTEL_EXPORTER_OTLP_ENDPOINT that is not a URL', async () => {
        const child = spawn(entry, {
          DATABASE_URL: `postgres://${encoded()}@${parts.host}:${parts.port}/${parts.name}`,
          OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318',
        });
        const timer = setTimeout(() => child.child.kill('SIGKILL'), 20_000);
        const code = await child.exited;
        clearTimeout(timer);
        expect(code, child.output()).to.equal(78);
        expectOneClearLine(child, parts.password, /OTEL_EXPORTER_OTLP_ENDPOINT/);
      });

      it('exits 0 after a clean drain even when the trace collector is down', async () => {
        const port = await freePort();
        const child = spawn(entry, {
          DATABASE_URL: `postgres://${encoded()}@${parts.host}:${parts.port}/${parts.name}`,
          PORT: String(port),
          // Nothing listens there: the last spans cannot be delivered.
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${await freePort()}`,
        });
        expect(await waitReady(`http://127.0.0.1:${port}`), child.output()).to.equal(200);
        child.child.kill('SIGTERM');
        expect(await child.exited, child.output()).to.equal(0);
      });
    });

    describe(`${name}: refusals`, () => {
      it('refuses an empty DATABASE_PASSWORD_FILE (an empty Secret key) by its name', async () => {
        const folder = mkdtempSync(path.join(tmpdir(), 'vextrus-empty-secret-'));
        writeFileSync(path.join(folder, 'password'), '\n');
        const child = spawn(entry, {
          DATABASE_HOST: parts.host,
          DATABASE_PORT: parts.port,
          DATABASE_USERNAME: parts.user,
          DATABASE_NAME: parts.name,
          DATABASE_PASSWORD_FILE: path.join(folder, 'password'),
        });
        expect(await child.exited, child.output()).to.equal(78);
        expectOneClearLine(child, parts.password, /DATABASE_PASSWORD_FILE .+ is empty/);
      });

      for (const [variable, value] of [
        ['PORT', '65536'],
        ['PORT', '80abc'],
        ['PORT', ' '],
        ['DATABASE_POOL_MAX', '-1'],
        ['DATABASE_POOL_MAX', '100000'],
        ['SHUTDOWN_TIMEOUT_MS', '1e9'],
        ['LOG_LEVEL', 'verbose'],
        ['AUTH_JWKS_URL', 'jwks.example'],
        ['DATABASE_SSLMODE', 'prefer'],
      ] as const) {
        it(`refuses ${variable}="${value}" with exit 78 and one line naming it`, async () => {
          const child = spawn(entry, {
            DATABASE_URL: `postgres://${encoded()}@${parts.host}:${parts.port}/${parts.name}`,
            [variable]: value,
          });
          expect(await child.exited, child.output()).to.equal(78);
          expectOneClearLine(child, parts.password, new RegExp(variable));
        });
      }
    });
  }
});

describe('configuration values that must be refused (in process)', () => {
  const database = {
    DATABASE_HOST: '127.0.0.1',
    DATABASE_USERNAME: 'app',
    DATABASE_PASSWORD: 'secret',
    DATABASE_NAME: 'vextrus',
  };

  function problems(env: NodeJS.ProcessEnv): string[] {
    try {
      loadServiceConfig({ service: 'test', port: 3000 }, env);
    } catch (err) {
      if (err instanceof ConfigError) return [...err.problems];
      throw err;
    }
    return [];
  }

  // PORT refuses these; the database port must not read them as 8080, 5000 and 5432.
  for (const port of ['0x1F90', '5e3', '5432.0', '0b1010']) {
    it(`refuses DATABASE_PORT="${port}" as PORT would`, () => {
      expect(problems({ ...database, DATABASE_PORT: port }).join('\n')).to.include('DATABASE_PORT');
    });
  }

  for (const variable of ['DATABASE_HOST', 'DATABASE_USERNAME', 'DATABASE_NAME'] as const) {
    it(`refuses a ${variable} of spaces instead of connecting with it`, () => {
      expect(problems({ ...database, [variable]: '   ' }).join('\n')).to.include(variable);
    });
  }

  for (const host of ['not a host', ' ', 'http://0.0.0.0']) {
    it(`refuses HOST="${host}" before anything connects`, () => {
      expect(problems({ ...database, HOST: host }).join('\n')).to.include('HOST');
    });
  }

  it('still takes the usual listen addresses', () => {
    for (const host of ['0.0.0.0', '::', '127.0.0.1', '::1', 'localhost', 'auth.vextrus.svc']) {
      expect(problems({ ...database, HOST: host }), host).to.deep.equal([]);
    }
  });
});

describe('auth signing keys at start-up (break attempts)', function () {
  this.timeout(60_000);
  const folder = mkdtempSync(path.join(tmpdir(), 'vextrus-bad-keys-'));
  const empty = mkdtempSync(path.join(tmpdir(), 'vextrus-no-keys-'));
  writeFileSync(path.join(folder, '2026-01-01.pem'), '-----BEGIN PRIVATE KEY-----\nnot a key\n');

  for (const [label, dir] of [
    ['a folder that does not exist', path.join(folder, 'missing')],
    ['a folder without .pem keys', empty],
    ['a malformed key file', folder],
  ] as const) {
    it(`refuses ${label} in AUTH_SIGNING_KEYS_DIR with exit 78 before connecting`, async () => {
      // Nothing listens on this port: had the service connected first, it would say so.
      const port = await freePort();
      const child = spawnTs('services/auth/src/main.ts', {
        DATABASE_URL: `postgres://app:key-test-secret@127.0.0.1:${port}/vextrus`,
        AUTH_SIGNING_KEYS_DIR: dir,
      });
      expect(await child.exited, child.output()).to.equal(78);
      expectOneClearLine(child, 'key-test-secret', /AUTH_SIGNING_KEYS_DIR/);
    });
  }
});

describe('operator start-up and its database connection (break attempts)', function () {
  this.timeout(60_000);
  let plane: TestPlane;

  before(async () => {
    plane = await createPlane('startup_break_operator', { platform: false });
  });

  // A test that fails half-way must not leave its operator running.
  const children: SpawnedProcess[] = [];
  function spawnOperator(env: NodeJS.ProcessEnv): SpawnedProcess {
    const child = spawnTs('operator/src/main.ts', env);
    children.push(child);
    return child;
  }

  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.child.exitCode === null && child.child.signalCode === null) {
        child.child.kill('SIGKILL');
        await child.exited;
      }
    }
  });

  after(() => plane.close());

  it('refuses an unknown LOG_LEVEL with exit 78 and one line naming it', async () => {
    const child = spawnOperator({
      DATABASE_URL: plane.database.url,
      LOG_LEVEL: 'verbose',
      PROBE_PORT: String(await freePort()),
    });
    expect(await child.exited, child.output()).to.equal(78);
    expectOneClearLine(child, new URL(plane.database.url).password, /LOG_LEVEL/);
  });

  it('names the database problem and its own in one line, not only the first', async () => {
    const child = spawnOperator({ WORKERS: '0', RESYNC_SECONDS: 'often' });
    expect(await child.exited, child.output()).to.equal(78);
    expectOneClearLine(child, 'no secret here', /WORKERS/);
    expect(child.output()).to.include('RESYNC_SECONDS');
    expect(child.output()).to.include('no database configured');
  });

  for (const [variable, value] of [
    ['GATEWAY_ENTRYPOINTS', 'web,'],
    ['GATEWAY_ENTRYPOINTS', 'web, websecure'],
    ['OPERATOR_NAMESPACE', 'Vextrus'],
    ['OPERATOR_NAMESPACE', ' '],
    ['MIGRATIONS_IMAGE', ' '],
  ] as const) {
    it(`refuses ${variable}="${value}" instead of failing on every reconcile`, () => {
      const reader = new EnvReader({ [variable]: value });
      readOperatorSettings(reader);
      expect(reader.problems.join('\n')).to.include(variable);
    });
  }

  it('refuses an empty-looking LOG_LEVEL of spaces the same way', async () => {
    const child = spawnOperator({
      DATABASE_URL: plane.database.url,
      LOG_LEVEL: ' ',
    });
    expect(await child.exited, child.output()).to.equal(78);
    expectOneClearLine(child, new URL(plane.database.url).password, /LOG_LEVEL/);
  });

  it('refuses a kubeconfig whose server is plain http, instead of retrying it forever', async () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'vextrus-kubeconfig-'));
    const kubeconfig = path.join(folder, 'config');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{ name: c, cluster: { server: "http://127.0.0.1:1" } }]',
        'users: [{ name: u, user: { token: abc } }]',
        'contexts: [{ name: x, context: { cluster: c, user: u } }]',
        'current-context: x',
      ].join('\n'),
    );
    const child = spawnOperator({
      DATABASE_URL: plane.database.url,
      KUBECONFIG: kubeconfig,
      PROBE_PORT: String(await freePort()),
    });
    const timer = setTimeout(() => child.child.kill('SIGKILL'), 20_000);
    const code = await child.exited;
    clearTimeout(timer);
    expect(code, child.output()).to.equal(78);
    expectOneClearLine(child, new URL(plane.database.url).password, /https/);
  });

  it('with PROBE_PORT taken, exits with one line naming the port', async () => {
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const apiPort = typeof address === 'object' && address ? address.port : 0;
    const folder = mkdtempSync(path.join(tmpdir(), 'vextrus-kubeconfig-'));
    const kubeconfig = path.join(folder, 'config');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{ name: c, cluster: { server: "https://127.0.0.1:${apiPort}" } }]`,
        'users: [{ name: u, user: { token: abc } }]',
        'contexts: [{ name: x, context: { cluster: c, user: u } }]',
        'current-context: x',
      ].join('\n'),
    );
    try {
      // The silent API server's own port is taken, on every address the probe would use.
      const child = spawnOperator({
        DATABASE_URL: plane.database.url,
        KUBECONFIG: kubeconfig,
        PROBE_PORT: String(apiPort),
      });
      const timer = setTimeout(() => child.child.kill('SIGKILL'), 20_000);
      const code = await child.exited;
      clearTimeout(timer);
      expect(code, child.output()).to.equal(1);
      const fatal = lines(child).filter((line) => line.includes('"level":"fatal"'));
      expect(fatal, child.output()).to.have.length(1);
      expect(fatal[0]).to.include(String(apiPort));
      expect(child.output(), 'no stack trace').not.to.match(/\s+at .+:\d+:\d+/);
    } finally {
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  it('exits promptly on SIGTERM although a probe client left a request half sent', async () => {
    // An https API server that accepts connections and never answers: the operator starts
    // and waits for its caches, which is all this needs.
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const apiPort = typeof address === 'object' && address ? address.port : 0;
    const folder = mkdtempSync(path.join(tmpdir(), 'vextrus-kubeconfig-'));
    const kubeconfig = path.join(folder, 'config');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{ name: c, cluster: { server: "https://127.0.0.1:${apiPort}" } }]`,
        'users: [{ name: u, user: { token: abc } }]',
        'contexts: [{ name: x, context: { cluster: c, user: u } }]',
        'current-context: x',
      ].join('\n'),
    );
    const probePort = await freePort();
    const child = spawnOperator({
      DATABASE_URL: plane.database.url,
      KUBECONFIG: kubeconfig,
      PROBE_PORT: String(probePort),
    });
    let probeClient: Socket | undefined;
    try {
      await child.waitForOutput((output) => output.includes('operator started'));
      probeClient = connect(probePort, '127.0.0.1');
      const client = probeClient;
      await new Promise<void>((resolve) =>
        client.write('GET /healthz HTTP/1.1\r\n', () => resolve()),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));

      const signalled = Date.now();
      child.child.kill('SIGTERM');
      const timer = setTimeout(() => child.child.kill('SIGKILL'), 30_000);
      const code = await child.exited;
      clearTimeout(timer);

      expect(code, child.output()).to.equal(0);
      expect(Date.now() - signalled).to.be.below(5_000);
    } finally {
      probeClient?.destroy();
      for (const socket of held) socket.destroy();
      silent.close();
    }
  });

  it('with DATABASE_SSLMODE=require, does not connect to a server without TLS', async () => {
    // The test server has ssl off: a client that asks for encryption must be refused.
    const url = databaseUrl({ DATABASE_URL: plane.database.url, DATABASE_SSLMODE: 'require' });
    const db = openDatabase({ url });
    try {
      const outcome = await db.sequelize.query('SELECT 1').then(
        () => 'connected without TLS',
        (err: Error) => err.message,
      );
      expect(outcome).to.match(/does not support SSL/);
    } finally {
      await db.close();
    }
  });

  it('connects to the IPv6 loopback [::1] named in DATABASE_URL', async () => {
    const target = new URL(plane.database.url);
    const forwarder = await ipv6Forwarder(Number(target.port));
    target.host = `[::1]:${forwarder.port}`;
    const db = openDatabase({ url: databaseUrl({ DATABASE_URL: target.toString() }) });
    try {
      await db.sequelize.query('SELECT 1');
      expect(forwarder.count()).to.be.above(0);
    } finally {
      await db.close();
      forwarder.close();
    }
  });
});
