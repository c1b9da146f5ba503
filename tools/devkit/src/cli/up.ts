/**
 * Runs the whole platform on this machine: `make up` (or `npm run up`).
 *
 * Embedded PostgreSQL (data kept in .data/), the platform roles and migrations, a local
 * Kubernetes control plane with its node, the CRDs, the operator, the auth and organization
 * services, Traefik routing the tenants' hosts to them, and the example tenants in examples/.
 * Ctrl-C (or `make down`, through the pid file .data/up.pid, or closing the terminal) stops
 * everything; a second run refuses to start while one runs, and the next run finds the data
 * again. With DATABASE_URL or DATABASE_* set it uses that server instead of the embedded one (as
 * a superuser or a role that may create roles).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../testing/process.js';
import { DEFAULT_PORTS, LocalPlatform } from '../local/platform.js';

const DATA_DIR = path.resolve(process.env.VEXTRUS_DATA_DIR ?? path.join(REPO_ROOT, '.data'));
const ports = {
  ...DEFAULT_PORTS,
  postgres: Number(process.env.VEXTRUS_POSTGRES_PORT ?? DEFAULT_PORTS.postgres),
};
const PID_FILE = path.join(DATA_DIR, 'up.pid');

function summary(platform: LocalPlatform): string {
  const tokens = Object.entries(platform.setupTokens)
    .map(([slug, token]) => `  ${slug}: ${token ?? '(used or expired)'}`)
    .join('\n');
  const postgres = platform.postgres
    ? `127.0.0.1:${ports.postgres} (superuser password in ${DATA_DIR}/secrets.json)`
    : 'external';
  return `
The platform is up. Data and logs are in ${DATA_DIR}.
  gateway       ${platform.url('gateway')}  (Traefik: Host acme.localhost, globex.localhost, ...)
  auth          ${platform.url('auth')}
  organization  ${platform.url('organization')}
  operator      http://127.0.0.1:${ports.operatorProbes}/metrics
  postgres      ${postgres}
  kubernetes    export KUBECONFIG=${platform.kubeconfig}

First administrators' setup tokens, as delivered by the operator (each works once; a token
already exchanged for a password is refused):
${tokens}

Try it through the gateway (the full walkthrough is in README.md):
  curl -s -XPOST 127.0.0.1:${ports.gateway}/auth/setup -H 'Host: acme.localhost' \\
    -H 'content-type: application/json' -d '{"token":"<acme token>","password":"<12+ characters>"}'
  curl -s -XPOST 127.0.0.1:${ports.gateway}/auth/login -H 'Host: acme.localhost' \\
    -H 'content-type: application/json' -d '{"email":"admin@acme.test","password":"<password>"}'
  curl -s 127.0.0.1:${ports.gateway}/org/organizations -H 'Host: acme.localhost' \\
    -H 'authorization: Bearer <accessToken>'

Logs: ${platform.logDir}. Press Ctrl-C (or run make down) to stop everything.`;
}

/** The pid of a `make up` that still runs with this data folder, from its pid file. */
function runningUp(): number | undefined {
  try {
    const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
    // A pid file left by a run that was killed may name a process that is something else now.
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return command.includes('cli/up.ts') ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the pid file if it is this run's (another run's file is not ours to remove). */
function removePidFile(): void {
  try {
    if (Number(readFileSync(PID_FILE, 'utf8').trim()) === process.pid) rmSync(PID_FILE);
  } catch {
    // No pid file: nothing to remove.
  }
}

await mkdir(DATA_DIR, { recursive: true });
const other = runningUp();
if (other !== undefined) {
  console.error(
    `The platform is already running (make up, pid ${other}, data in ${DATA_DIR}); ` +
      'stop it first with Ctrl-C in its terminal or with make down.',
  );
  process.exit(1);
}
const platform = new LocalPlatform({ dataDir: DATA_DIR, ports });
writeFileSync(PID_FILE, `${process.pid}\n`);
let stopping = false;
const stop = (reason: string): void => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${reason}: stopping ...`);
  platform.stop().then(
    () => {
      removePidFile();
      console.log('Stopped.');
      process.exit(0);
    },
    (err: unknown) => {
      removePidFile();
      console.error('Stopping failed:', err);
      process.exit(1);
    },
  );
};
// SIGHUP: the terminal closed. PostgreSQL, in the same process group, takes its own SIGHUP as
// "reload the configuration" and keeps running, so it is stopped here like everything else.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(signal, () => stop(signal));

try {
  await platform.start();
  console.log(summary(platform));
  void platform.firstExit().then(async (exit) => {
    if (stopping) return;
    console.error(`\n${exit.name} exited (${exit.code}); last lines:\n${await exit.tail()}`);
    stop('component exit');
  });
} catch (err) {
  if (!stopping) {
    console.error(
      `\nThe platform did not start: ${err instanceof Error ? err.message : String(err)}`,
    );
    await platform.stop();
    removePidFile();
    process.exit(1);
  }
}
