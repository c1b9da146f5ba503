import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../ports.js';
import { Supervised, waitFor } from '../supervised.js';
import { toolPath } from './binaries.js';
import { generateCertificates, type Certificates } from './certificates.js';

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager (Job controller, garbage collector, namespaces). */
  controllerManager?: boolean;
  /** Folder for data, certificates and logs; a new temporary one (removed on stop) by default. */
  dir?: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Path of an administrator kubeconfig (client certificate of system:masters). */
  kubeconfig: string;
  certificates: Certificates;
  dir: string;
  /** Stops every component and, for a temporary folder, removes it. */
  stop(): Promise<void>;
  /** Stops and restarts kube-apiserver on the same port and data (for watch-recovery tests). */
  restartApiServer(): Promise<void>;
}

const START_TIMEOUT_MS = 120_000;
const running = new Set<ControlPlane>();

/** Stops every control plane of this process when it is interrupted or exits. */
let cleanupInstalled = false;

function installCleanup(): void {
  // One pair of handlers for every plane of the process, however many are started one by one.
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const onSignal = (signal: NodeJS.Signals): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanupInstalled = false;
    void Promise.all([...running].map((plane) => plane.stop())).finally(() => {
      process.kill(process.pid, signal);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function httpsGet(url: string, certs: Certificates): Promise<{ status: number; body: string }> {
  return Promise.all([
    readFile(certs.caCert),
    readFile(certs.adminCert),
    readFile(certs.adminKey),
  ]).then(
    ([ca, cert, key]) =>
      new Promise((resolve, reject) => {
        const req = request(url, { ca, cert, key, timeout: 5000 }, (res) => {
          let body = '';
          res.on('error', reject);
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.end();
      }),
  );
}

async function writeKubeconfig(file: string, server: string, certs: Certificates): Promise<void> {
  const b64 = async (f: string): Promise<string> => (await readFile(f)).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'vextrus-local',
        cluster: { server, 'certificate-authority-data': await b64(certs.caCert) },
      },
    ],
    users: [
      {
        name: 'vextrus-admin',
        user: {
          'client-certificate-data': await b64(certs.adminCert),
          'client-key-data': await b64(certs.adminKey),
        },
      },
    ],
    contexts: [
      { name: 'vextrus-local', context: { cluster: 'vextrus-local', user: 'vextrus-admin' } },
    ],
    'current-context': 'vextrus-local',
  };
  await writeFile(file, stringify(config), { mode: 0o600 });
}

/**
 * Starts a real Kubernetes control plane on free loopback ports, like controller-runtime's
 * envtest: etcd, kube-apiserver and (optionally) kube-controller-manager built from Go modules,
 * with freshly generated certificates. Quiet when it works; a failure names the component and
 * shows its last log lines. Everything stops, and temporary files go, on stop(), on SIGINT or
 * SIGTERM, and (through setpriv's parent-death signal) when this process is killed.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const [etcdBin, apiserverBin, kcmBin] = await Promise.all([
    toolPath('etcd'),
    toolPath('kube-apiserver'),
    options.controllerManager === false ? undefined : toolPath('kube-controller-manager'),
  ]);
  const temporary = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'vextrus-kube-'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const processes: Supervised[] = [];
  let stopped = false;

  const removeOnExit = (): void => {
    if (!stopped && temporary) rmSync(dir, { recursive: true, force: true });
  };
  // Every caller waits for the same stop, so none can exit the process half-way through it.
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> => {
    stopping ??= (async () => {
      stopped = true;
      running.delete(plane);
      process.off('exit', removeOnExit);
      for (const proc of [...processes].reverse()) await proc.stop('SIGTERM', 5000);
      if (temporary) rmSync(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const plane: ControlPlane = {
    server: '',
    kubeconfig: path.join(dir, 'kubeconfig'),
    certificates: undefined as unknown as Certificates,
    dir,
    stop: stopAll,
    restartApiServer: async () => {},
  };
  installCleanup();
  running.add(plane);
  process.once('exit', removeOnExit);

  try {
    const certs = await generateCertificates(dir);
    plane.certificates = certs;
    const [etcdPort, etcdPeerPort, apiPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];

    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = new Supervised('etcd', etcdBin, [
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    processes.push(etcd);
    await waitFor(
      etcd,
      'GET /health',
      async () => {
        const response = await fetch(`${etcdUrl}/health`);
        return response.ok && (await response.text()).includes('"health":"true"');
      },
      START_TIMEOUT_MS,
    );

    plane.server = `https://127.0.0.1:${apiPort}`;
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${dir}`,
      `--tls-cert-file=${certs.serverCert}`,
      `--tls-private-key-file=${certs.serverKey}`,
      `--client-ca-file=${certs.caCert}`,
      `--secure-port=${apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${certs.serviceAccountPublicKey}`,
      `--service-account-signing-key-file=${certs.serviceAccountKey}`,
      `--kubelet-client-certificate=${certs.kubeletClientCert}`,
      `--kubelet-client-key=${certs.kubeletClientKey}`,
      '--kubelet-preferred-address-types=InternalIP',
      '--profiling=false',
      ...(kcmBin ? [] : ['--disable-admission-plugins=ServiceAccount']),
    ];
    const startApiServer = async (): Promise<Supervised> => {
      const apiserver = new Supervised('kube-apiserver', apiserverBin, apiserverArgs);
      processes.push(apiserver);
      await waitFor(
        apiserver,
        'GET /readyz',
        async () => {
          return (await httpsGet(`${plane.server}/readyz`, certs)).status === 200;
        },
        START_TIMEOUT_MS,
      );
      await waitFor(
        apiserver,
        'the default namespace',
        async () => {
          return (
            (await httpsGet(`${plane.server}/api/v1/namespaces/default`, certs)).status === 200
          );
        },
        START_TIMEOUT_MS,
      );
      return apiserver;
    };
    let apiserver = await startApiServer();
    await writeKubeconfig(plane.kubeconfig, plane.server, certs);
    plane.restartApiServer = async () => {
      await apiserver.stop('SIGTERM', 10_000);
      processes.splice(processes.indexOf(apiserver), 1);
      apiserver = await startApiServer();
    };

    if (kcmBin) {
      const kcm = new Supervised('kube-controller-manager', kcmBin, [
        `--kubeconfig=${plane.kubeconfig}`,
        '--leader-elect=false',
        '--secure-port=0',
        `--service-account-private-key-file=${certs.serviceAccountKey}`,
        `--root-ca-file=${certs.caCert}`,
        '--use-service-account-credentials=false',
        // No node heartbeats to judge and no cloud: these controllers would only add noise.
        '--controllers=*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller',
      ]);
      processes.push(kcm);
      // The service-account controller creating `default` in `default` proves the manager works.
      await waitFor(
        kcm,
        'the default service account',
        async () => {
          const url = `${plane.server}/api/v1/namespaces/default/serviceaccounts/default`;
          return (await httpsGet(url, certs)).status === 200;
        },
        START_TIMEOUT_MS,
      );
    }
    return plane;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
