import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, parse, stringify } from 'yaml';
import { CoreV1Api, KubeConfig, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import {
  REPO_ROOT,
  createNamespace,
  installCrds,
  startControlPlane,
  toolPath,
  type ControlPlane,
} from '@vextrus/devkit';
import { CHART, VALUES_FILES, render, type Manifest } from './chart-helpers.js';

const run = promisify(execFile);

/** Kinds whose CRDs this control plane does not have (Prometheus Operator's); checked offline. */
const NOT_INSTALLED = new Set(['ServiceMonitor']);

async function traefikCrds(): Promise<V1CustomResourceDefinition[]> {
  const script = path.join(REPO_ROOT, 'tools', 'build-tools.sh');
  const { stdout } = await run(script, ['--traefik-crds'], { timeout: 600_000 });
  return parseAllDocuments(readFileSync(stdout.trim(), 'utf8'))
    .map((document) => document.toJS() as V1CustomResourceDefinition | null)
    .filter((crd): crd is V1CustomResourceDefinition => crd?.kind === 'CustomResourceDefinition');
}

describe('the vextrus Helm chart against a real API server', function () {
  // Starting etcd and kube-apiserver takes up to a minute on 2 busy cores.
  this.timeout(300_000);
  let plane: ControlPlane;
  let core: CoreV1Api;
  let kubectl: string;
  let dir: string;

  before(async () => {
    plane = await startControlPlane({ controllerManager: false });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(plane.kubeconfig);
    core = kubeConfig.makeApiClient(CoreV1Api);
    kubectl = await toolPath('kubectl');
    dir = mkdtempSync(path.join(tmpdir(), 'vextrus-chart-dry-run-'));
    const tenantCrd = parse(
      readFileSync(path.join(CHART, 'crds', 'tenants.platform.vextrus.dev.yaml'), 'utf8'),
    ) as V1CustomResourceDefinition;
    await installCrds(kubeConfig, [tenantCrd, ...(await traefikCrds())]);
  });
  after(async () => {
    await plane?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** `kubectl apply --dry-run=server --validate=strict` of the manifests; the outcome, never throws. */
  async function dryRun(
    name: string,
    manifests: Manifest[],
  ): Promise<{ ok: boolean; out: string }> {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, manifests.map((m) => stringify(m)).join('---\n'));
    try {
      const { stdout, stderr } = await run(
        kubectl,
        [
          '--kubeconfig',
          plane.kubeconfig,
          'apply',
          '--dry-run=server',
          '--validate=strict',
          '-f',
          file,
        ],
        { maxBuffer: 16 * 1024 * 1024 },
      );
      return { ok: true, out: stdout + stderr };
    } catch (err) {
      const failure = err as { stdout?: string; stderr?: string };
      return { ok: false, out: `${failure.stdout ?? ''}${failure.stderr ?? ''}` };
    }
  }

  for (const file of VALUES_FILES) {
    it(`accepts every object rendered with ${path.basename(file)} in a server-side dry run`, async () => {
      const namespace = await createNamespace(core, 'chart-');
      const manifests = (await render(['-f', file], namespace)).filter(
        (m) => !NOT_INSTALLED.has(m.kind),
      );
      expect(manifests.length).to.be.greaterThan(5);

      const outcome = await dryRun(path.basename(file, '.yaml'), manifests);

      expect(outcome.ok, outcome.out).to.equal(true);
      const accepted = outcome.out.split('\n').filter((line) => line.includes('(server dry run)'));
      expect(accepted, outcome.out).to.have.length(manifests.length);
    });
  }

  it('when a rendered object is invalid, the dry run refuses it (the check can fail)', async () => {
    const namespace = await createNamespace(core, 'chart-');
    const manifests = await render(['-f', VALUES_FILES[0] ?? ''], namespace);
    const broken = manifests.map((m) =>
      m.kind === 'Service' ? { ...m, spec: { ...m.spec, type: 'Teleport' } } : m,
    );

    const outcome = await dryRun('broken', broken);

    expect(outcome.ok).to.equal(false);
    expect(outcome.out).to.include('Teleport');
  });
});
