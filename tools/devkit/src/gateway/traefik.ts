import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { toolPath } from '../kube/binaries.js';
import { Supervised, waitFor } from '../supervised.js';

export interface GatewayOptions {
  /** Kubeconfig of the API server whose IngressRoutes and Middlewares Traefik serves. */
  kubeconfig: string;
  /** Namespace Traefik watches (where the operator writes the tenants' routes). */
  namespace: string;
  /** Port of the `web` entry point on 127.0.0.1. */
  port: number;
  /** Folder of traefik.log (Traefik's own log) and traefik-access.log. */
  logDir: string;
  /** The Traefik binary; by default the tools cache's, built first when missing. */
  binary?: string;
}

export interface Gateway {
  /** http://127.0.0.1:PORT */
  url: string;
  process: Supervised;
  stop(): Promise<void>;
}

/**
 * Starts Traefik (built from Go modules by tools/build-tools.sh) on 127.0.0.1 with its
 * Kubernetes CRD provider watching the local API server through the KUBECONFIG variable (which
 * carries the client certificate; the provider's own endpoint options only take a token). It
 * never calls out: no version check, no anonymous usage report, no dashboard. `/ping` on the
 * `web` entry point answers once Traefik runs; routes follow as the provider syncs.
 */
export async function startTraefik(options: GatewayOptions): Promise<Gateway> {
  const binary = options.binary ?? (await toolPath('traefik'));
  const address = `127.0.0.1:${options.port}`;
  const traefik = new Supervised(
    'traefik',
    binary,
    [
      `--entryPoints.web.address=${address}`,
      '--providers.kubernetescrd=true',
      `--providers.kubernetescrd.namespaces=${options.namespace}`,
      '--providers.kubernetescrd.allowExternalNameServices=true',
      '--api.dashboard=false',
      '--global.checkNewVersion=false',
      '--global.sendAnonymousUsage=false',
      '--ping=true',
      '--ping.entryPoint=web',
      '--log.level=INFO',
      // The log goes to a file (.data/logs/traefik.log), where colour codes are only noise.
      '--log.noColor=true',
      '--accesslog=true',
      `--accesslog.filePath=${path.join(options.logDir, 'traefik-access.log')}`,
    ],
    { env: { PATH: process.env.PATH, HOME: process.env.HOME, KUBECONFIG: options.kubeconfig } },
  );
  const log = createWriteStream(path.join(options.logDir, 'traefik.log'), { flags: 'a' });
  traefik.child.stdout?.pipe(log, { end: false });
  traefik.child.stderr?.pipe(log, { end: false });
  void traefik.exited.then(() => log.end());
  const url = `http://${address}`;
  const gateway: Gateway = { url, process: traefik, stop: () => traefik.stop('SIGTERM', 5000) };
  try {
    await waitFor(traefik, `GET ${url}/ping`, async () => (await fetch(`${url}/ping`)).ok, 30_000);
  } catch (err) {
    await gateway.stop();
    throw err;
  }
  return gateway;
}
