import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { PLATFORM_IMAGES, REPO_ROOT } from '@vextrus/devkit';
import { CHART, render, type Manifest } from './chart-helpers.js';

/*
 * No Docker engine runs here, so this checks what skaffold.yaml refers to: every path, image and
 * chart value it names exists. skaffold-schema.test.ts checks it against Skaffold's own schema,
 * skaffold-cli.test.ts runs the real Skaffold's diagnose and render on it, and
 * kind-config.test.ts decodes deploy/kind/cluster.yaml with kind's own config type.
 */

interface Artifact {
  image: string;
  context: string;
  docker: { dockerfile: string };
}

interface Release {
  name: string;
  chartPath: string;
  namespace: string;
  setValueTemplates: Record<string, string>;
  valuesFiles?: string[];
}

interface SkaffoldConfig {
  apiVersion: string;
  kind: string;
  build: { artifacts: Artifact[]; local: Record<string, unknown> };
  manifests: { helm: { releases: Release[] } };
  portForward: {
    resourceType: string;
    resourceName: string;
    namespace: string;
    port: number;
  }[];
  profiles: {
    name: string;
    patches: { op: string; path: string; value: unknown }[];
  }[];
}

const config = parse(readFileSync(path.join(REPO_ROOT, 'skaffold.yaml'), 'utf8')) as SkaffoldConfig;
const values = parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Record<
  string,
  unknown
>;

/** The value at a dotted key of the chart's values.yaml, or undefined when it has no such key. */
function valueAt(key: string): unknown {
  let node: unknown = values;
  for (const part of key.split('.')) {
    if (typeof node !== 'object' || node === null || !(part in node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Skaffold's template name of an image: `vextrus/auth` → `vextrus_auth`. */
const templateName = (image: string): string => image.replace(/[/.-]/g, '_');

describe('skaffold.yaml', function () {
  this.timeout(60_000);
  const release = config.manifests.helm.releases[0];

  it('is a Skaffold v4beta13 Config with one Helm release of the chart', () => {
    expect(config.apiVersion).to.equal('skaffold/v4beta13');
    expect(config.kind).to.equal('Config');
    expect(config.manifests.helm.releases).to.have.length(1);
    expect(path.resolve(REPO_ROOT, release?.chartPath ?? '')).to.equal(CHART);
  });

  it('builds each platform image from a Dockerfile that exists, under the name the chart uses', () => {
    const images = config.build.artifacts.map((a) => a.image).sort();
    expect(images).to.deep.equal(Object.keys(PLATFORM_IMAGES).sort());
    for (const artifact of config.build.artifacts) {
      const context = path.resolve(REPO_ROOT, artifact.context);
      expect(existsSync(path.join(context, artifact.docker.dockerfile)), artifact.image).to.equal(
        true,
      );
      const component = artifact.image.split('/')[1] ?? '';
      expect(valueAt(`${component}.image.repository`), artifact.image).to.equal(artifact.image);
    }
  });

  it('wires each built image into chart values that exist, and only built images', () => {
    const built = new Set(config.build.artifacts.map((a) => templateName(a.image)));
    const templates = Object.entries(release?.setValueTemplates ?? {});
    expect(templates).to.have.length(config.build.artifacts.length * 2);
    for (const [key, template] of templates) {
      expect(valueAt(key), `values.yaml has ${key}`).to.be.a('string');
      const names = [...template.matchAll(/\{\{\.IMAGE_(?:REPO|TAG)_([A-Za-z0-9_]+)\}\}/g)];
      expect(names, template).to.have.length.greaterThan(0);
      for (const [, name] of names) expect(built.has(name ?? ''), `${key}: ${name}`).to.equal(true);
    }
    for (const artifact of config.build.artifacts) {
      const component = artifact.image.split('/')[1] ?? '';
      expect(release?.setValueTemplates[`${component}.image.tag`]).to.equal(
        `{{.IMAGE_TAG_${templateName(artifact.image)}}}`,
      );
    }
  });

  it('forwards ports of Services the chart renders for this release', async () => {
    const kind = config.profiles.find((p) => p.name === 'kind');
    const valuesFiles = kind?.patches.find((p) => p.path.endsWith('/valuesFiles'))?.value as
      string[] | undefined;
    expect(valuesFiles).to.have.length.greaterThan(0);
    const args = (valuesFiles ?? []).flatMap((file) => {
      expect(existsSync(path.join(REPO_ROOT, file)), file).to.equal(true);
      return ['-f', path.join(REPO_ROOT, file)];
    });
    // render() installs as release `vextrus`, the name skaffold.yaml gives the release.
    expect(release?.name).to.equal('vextrus');
    const manifests = await render(args, release?.namespace);
    const services = new Map(
      manifests
        .filter((m: Manifest) => m.kind === 'Service')
        .map((m) => [m.metadata.name, (m.spec?.ports ?? []) as { port: number }[]]),
    );
    for (const forward of config.portForward) {
      expect(forward.resourceType).to.equal('service');
      expect(forward.namespace).to.equal(release?.namespace);
      const ports = services.get(forward.resourceName);
      expect(ports, `Service ${forward.resourceName}`).to.not.equal(undefined);
      expect(ports?.map((p) => p.port)).to.include(forward.port);
    }
  });

  it('has profile patches whose targets exist in the base config', () => {
    for (const profile of config.profiles) {
      for (const patch of profile.patches) {
        const parent = patch.path.split('/').slice(1, -1);
        let node: unknown = config;
        for (const part of parent) {
          expect(typeof node, `${profile.name}: ${patch.path}`).to.equal('object');
          node = (node as Record<string, unknown>)[part];
        }
        expect(typeof node, `${profile.name}: ${patch.path}`).to.equal('object');
        expect(node, `${profile.name}: ${patch.path}`).to.not.equal(null);
      }
    }
  });
});
