import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startPostgres, type RunningPostgres } from '../postgres.js';

/**
 * A PostgreSQL of a test suite's own, for suites that stop and start it (outages): the shared
 * one of the mocha fixture must stay up for every other suite. While it exists, test planes
 * (createPlane) are made on it.
 */
export interface OwnPostgres {
  /** The running server (a new object after each start). */
  readonly server: RunningPostgres;
  /** Stops the server, as an outage would. */
  stop(): Promise<void>;
  /** Starts it again on the same port, with the same data and password. */
  start(): Promise<void>;
  /** Stops it, points createPlane back at the shared cluster and deletes the data. */
  dispose(): Promise<void>;
}

export async function startOwnPostgres(prefix: string): Promise<OwnPostgres> {
  const folder = await mkdtemp(path.join(tmpdir(), `vextrus-${prefix}-`));
  // As root PostgreSQL runs as the postgres user, which must be able to enter the folder.
  await chmod(folder, 0o755);
  const options = {
    dataDir: path.join(folder, 'data'),
    password: randomBytes(12).toString('hex'),
    durable: false,
  };
  let server = await startPostgres(options);
  let running = true;
  const shared = process.env.VEXTRUS_TEST_POSTGRES_URL;
  // createPlane makes its database on the cluster this variable names.
  process.env.VEXTRUS_TEST_POSTGRES_URL = server.url();
  return {
    get server() {
      return server;
    },
    async stop() {
      await server.stop();
      running = false;
    },
    async start() {
      server = await startPostgres({ ...options, port: server.port });
      running = true;
    },
    async dispose() {
      if (running) await server.stop();
      running = false;
      if (shared === undefined) delete process.env.VEXTRUS_TEST_POSTGRES_URL;
      else process.env.VEXTRUS_TEST_POSTGRES_URL = shared;
      await rm(folder, { recursive: true, force: true });
    },
  };
}
