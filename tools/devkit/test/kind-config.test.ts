import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, toolPath } from '@vextrus/devkit';

const run = promisify(execFile);
const CLUSTER = path.join(REPO_ROOT, 'deploy', 'kind', 'cluster.yaml');

interface PortMapping {
  containerPort: number;
  hostPort: number;
  listenAddress: string;
  protocol: string;
}

interface KindCluster {
  kind: string;
  apiVersion: string;
  name: string;
  nodes: { role: string; labels?: Record<string, string>; extraPortMappings?: PortMapping[] }[];
}

/**
 * Decodes kind cluster configs with tools/go/kind-config: kind's published v1alpha4.Cluster type,
 * decoded as `kind create cluster --config` does (unknown fields refused), defaults applied.
 */
async function decode(
  file: string,
): Promise<{ code: number; config?: KindCluster; stderr: string }> {
  try {
    const { stdout, stderr } = await run(await toolPath('kind-config'), [file]);
    return { code: 0, config: JSON.parse(stdout) as KindCluster, stderr };
  } catch (err) {
    const failure = err as { code?: number; stderr?: string };
    return {
      code: typeof failure.code === 'number' ? failure.code : 1,
      stderr: failure.stderr ?? '',
    };
  }
}

describe('the kind cluster config, decoded by kind v0.33.0 config types', function () {
  // The first build of kind-config takes a few seconds to a minute.
  this.timeout(300_000);

  it('decodes strictly, with one ingress-ready node mapping the gateway to 127.0.0.1', async () => {
    const { code, config, stderr } = await decode(CLUSTER);

    expect(code, stderr).to.equal(0);
    expect(config?.apiVersion).to.equal('kind.x-k8s.io/v1alpha4');
    expect(config?.name).to.equal('vextrus');
    const ingress = (config?.nodes ?? []).filter((n) => n.labels?.['ingress-ready'] === 'true');
    expect(ingress).to.have.length(1);
    const mappings = ingress[0]?.extraPortMappings ?? [];
    expect(mappings.map((m) => [m.containerPort, m.hostPort])).to.deep.equal([
      [30080, 8080],
      [30443, 8443],
    ]);
    for (const mapping of mappings) {
      expect(mapping.listenAddress).to.equal('127.0.0.1');
      expect(mapping.protocol).to.equal('TCP');
    }
  });

  it('when a field name has a typo, it refuses the file naming the field and line', async () => {
    const typo = path.join(mkdtempSync(path.join(tmpdir(), 'vextrus-kind-')), 'cluster.yaml');
    const text = readFileSync(CLUSTER, 'utf8');
    expect(text).to.include('extraPortMappings:');
    writeFileSync(typo, text.replace('extraPortMappings:', 'extraPortMapping:'));

    const { code, stderr } = await decode(typo);

    expect(code).to.equal(1);
    expect(stderr).to.include('unable to decode config');
    expect(stderr).to.match(/line \d+: field extraPortMapping not found in type v1alpha4\.Node/);
  });

  it('when the apiVersion is not one kind reads, it says which one it reads', async () => {
    const other = path.join(mkdtempSync(path.join(tmpdir(), 'vextrus-kind-')), 'cluster.yaml');
    const text = readFileSync(CLUSTER, 'utf8');
    writeFileSync(other, text.replace('kind.x-k8s.io/v1alpha4', 'kind.x-k8s.io/v1alpha3'));

    const { code, stderr } = await decode(other);

    expect(code).to.equal(1);
    expect(stderr).to.include('unknown apiVersion: "kind.x-k8s.io/v1alpha3"');
  });
});
