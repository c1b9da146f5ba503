import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from './control-plane.js';
import { toolPath } from './binaries.js';
import type { LocalImage } from './images.js';
import { LocalNode } from './local-node.js';

/** A control plane with its local node and API clients: what tests and the local platform use. */
const run = promisify(execFile);

export interface Cluster {
  plane: ControlPlane;
  node: LocalNode;
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  objects: KubernetesObjectApi;
  stop(): Promise<void>;
}

export interface ClusterOptions extends ControlPlaneOptions {
  images?: Record<string, LocalImage>;
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const plane = await startControlPlane(options);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(plane.kubeconfig);
  const logDir = mkdtempSync(path.join(tmpdir(), 'vextrus-node-logs-'));
  const node = new LocalNode({
    kubeconfig: plane.kubeconfig,
    certificates: plane.certificates,
    logDir: options.dir ? path.join(options.dir, 'pod-logs') : logDir,
    images: options.images,
  });
  try {
    await node.start();
  } catch (err) {
    await plane.stop();
    throw err;
  }
  return {
    plane,
    node,
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    objects: KubernetesObjectApi.makeApiClient(kubeConfig),
    async stop() {
      await node.stop();
      await plane.stop();
      rmSync(logDir, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns a value (not undefined), or fails naming what it waited for. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${why}`);
}

/**
 * Installs CRDs with `kubectl apply --server-side` (the typed client would drop schema keys such
 * as x-kubernetes-int-or-string) and waits until the API server serves them.
 */
export async function installCrds(
  kubeConfig: KubeConfig,
  crds: V1CustomResourceDefinition[],
): Promise<void> {
  const api = kubeConfig.makeApiClient(ApiextensionsV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  const kubectl = await toolPath('kubectl');
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'vextrus-crds-')), 'crds.json');
  writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: crds }));
  try {
    const kubeconfigFile = path.join(path.dirname(file), 'kubeconfig');
    writeFileSync(kubeconfigFile, kubeConfig.exportConfig());
    await run(kubectl, ['--kubeconfig', kubeconfigFile, 'apply', '--server-side', '-f', file]);
  } finally {
    rmSync(path.dirname(file), { recursive: true, force: true });
  }
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    await waitUntil(`CRD ${name} to be established`, async () => {
      const current = await api.readCustomResourceDefinition({ name });
      const established = current.status?.conditions?.find((c) => c.type === 'Established');
      return established?.status === 'True' ? true : undefined;
    });
    // Established can come a moment before the resource is served; wait until a list works.
    const version = crd.spec.versions.find((v) => v.served)?.name ?? '';
    await waitUntil(`${name} to be served`, async () => {
      await custom.listClusterCustomObject({
        group: crd.spec.group,
        version,
        plural: crd.spec.names.plural,
      });
      return true;
    });
  }
}

/** Creates a namespace with a generated name and returns it. */
export async function createNamespace(core: CoreV1Api, prefix = 'test-'): Promise<string> {
  const namespace = await core.createNamespace({ body: { metadata: { generateName: prefix } } });
  return namespace.metadata?.name ?? '';
}
