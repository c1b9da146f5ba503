import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../tools/devkit/src/ports.js';
import { LocalPlatform } from '../tools/devkit/src/local/platform.js';

/**
 * The local platform of `make up`, in a temporary folder on free ports. Traefik runs when it is
 * in the tools cache (make test builds it); otherwise `platform.gatewayProblem` says why not.
 */
export interface TestPlatform {
  platform: LocalPlatform;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startTestPlatform(): Promise<TestPlatform> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'vextrus-e2e-'));
  // As root the embedded PostgreSQL runs as the postgres user, which must enter this folder.
  await chmod(dataDir, 0o755);
  const platform = new LocalPlatform({
    dataDir,
    ports: {
      postgres: await freePort(),
      auth: await freePort(),
      organization: await freePort(),
      operatorProbes: await freePort(),
      gateway: await freePort(),
    },
    logLevel: 'warn',
    gateway: 'optional',
    progress: (_title, run) => run(),
  });
  const stop = async (): Promise<void> => {
    await platform.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await platform.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return { platform, dataDir, stop };
}

/** Skips a step that only the gateway can show, naming why Traefik does not run. */
export function skipWithoutGateway(context: Mocha.Context, platform: LocalPlatform): void {
  if (platform.gateway) return;
  if (context.test) context.test.title += ` (skipped: ${platform.gatewayProblem ?? 'no gateway'})`;
  context.skip();
}
