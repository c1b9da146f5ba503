import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { PLATFORM_IMAGES, REPO_ROOT, toolPath } from '@vextrus/devkit';
import { containersOf, podSpecOf, type Manifest } from './chart-helpers.js';

const run = promisify(execFile);
const SKAFFOLD_YAML = path.join(REPO_ROOT, 'skaffold.yaml');

/*
 * skaffold.yaml run through the real Skaffold v2.16.1 (tools/go/skaffold), offline: no Docker
 * engine and no cluster run here, and nothing may be pulled or pushed.
 *
 * - `skaffold diagnose --yaml-only` parses the file strictly and applies the profiles.
 * - `skaffold render --digest-source=tag --offline` computes the image tags without building
 *   (tag digest source: the tags as computed, no registry lookup), runs `helm template` of the
 *   chart with them in the values and Skaffold's own post-renderer (`skaffold filter`), and
 *   prints the manifests.
 *
 * Skaffold runs `helm` from PATH: Helm 3 (tools/go/helm3), because Skaffold v2.16.1 asks
 * `helm version --client` and passes itself as `--post-renderer` executable, both of which
 * Helm 4 refuses. The last test pins that down, so that it fails once a newer Skaffold works with
 * Helm 4 and helm3 can go.
 *
 * NOTE: the tests give the tag with `--tag` instead of letting skaffold.yaml's inputDigest tag
 * policy compute it, because inputDigest reads each Dockerfile's base image (node) from a Docker
 * engine or its registry, and neither can be reached here. Everything after the tag (the default
 * repository, the values templates, the post-renderer) is Skaffold's own work.
 */

/** The repository prefix the tests ask for: kind's local registry, never contacted. */
const DEFAULT_REPO = 'localhost:5001/vextrus-dev';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

describe('skaffold.yaml through the real Skaffold v2.16.1', function () {
  this.timeout(120_000);
  let skaffold = '';
  let env: NodeJS.ProcessEnv = {};
  let scratch = '';

  before(async function () {
    // `make test-tools` builds both first; alone, the first Skaffold build takes ~20 minutes.
    this.timeout(60 * 60_000);
    skaffold = await toolPath('skaffold');
    const helm3 = path.dirname(await toolPath('helm3'));
    // Skaffold asks `kubectl config view` for the namespace: our kubectl, which reads only the
    // (missing) kubeconfig, never another one that might ask some server for its version.
    const kubectl = path.dirname(await toolPath('kubectl'));

    // Skaffold and Helm keep their config and caches in a throw-away HOME; the global config
    // turns off Skaffold's metrics and update check. No kubeconfig and a Docker socket path that
    // nothing listens on: neither a cluster nor a Docker engine is ever contacted.
    scratch = mkdtempSync(path.join(tmpdir(), 'vextrus-skaffold-'));
    mkdirSync(path.join(scratch, '.skaffold'));
    writeFileSync(
      path.join(scratch, '.skaffold', 'config'),
      'global:\n  collect-metrics: false\n  update-check: false\n',
    );
    env = {
      ...process.env,
      HOME: scratch,
      PATH: [helm3, kubectl, process.env.PATH ?? ''].join(path.delimiter),
      KUBECONFIG: path.join(scratch, 'no-kubeconfig'),
      DOCKER_HOST: `unix://${path.join(scratch, 'no-docker.sock')}`,
      SKAFFOLD_UPDATE_CHECK: 'false',
    };
  });

  after(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  async function skaffoldRun(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Outcome> {
    try {
      const { stdout, stderr } = await run(skaffold, args, {
        cwd: REPO_ROOT,
        env: { ...env, ...extraEnv },
        maxBuffer: 32 * 1024 * 1024,
        timeout: 100_000,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const failure = err as { code?: number; stdout?: string; stderr?: string };
      return {
        code: typeof failure.code === 'number' ? failure.code : 1,
        stdout: failure.stdout ?? '',
        stderr: failure.stderr ?? '',
      };
    }
  }

  /** A copy of skaffold.yaml with one edit, in the scratch folder (the repo's file is untouched). */
  function brokenCopy(from: string, to: string): string {
    const source = readFileSync(SKAFFOLD_YAML, 'utf8');
    expect(source).to.include(from);
    const file = path.join(mkdtempSync(path.join(scratch, 'broken-')), 'skaffold.yaml');
    writeFileSync(file, source.replace(from, to));
    return file;
  }

  describe('skaffold diagnose --yaml-only', () => {
    it('parses skaffold.yaml and applies the kind profile', async () => {
      const base = await skaffoldRun(['diagnose', '--yaml-only', '--filename', SKAFFOLD_YAML]);
      expect(base.code, base.stderr).to.equal(0);
      const resolved = parse(base.stdout) as { build: { artifacts: { image: string }[] } };
      expect(resolved.build.artifacts.map((a) => a.image).sort()).to.deep.equal(
        Object.keys(PLATFORM_IMAGES).sort(),
      );

      const kind = await skaffoldRun([
        'diagnose',
        '--yaml-only',
        '--filename',
        SKAFFOLD_YAML,
        '--profile',
        'kind',
      ]);
      expect(kind.code, kind.stderr).to.equal(0);
      const patched = parse(kind.stdout) as {
        build: { local: { push?: boolean } };
        manifests: { helm: { releases: { valuesFiles?: string[] }[] } };
      };
      expect(patched.build.local.push).to.equal(false);
      // Skaffold resolves paths against the config's folder.
      expect(patched.manifests.helm.releases[0]?.valuesFiles).to.deep.equal([
        path.join(REPO_ROOT, 'deploy', 'kind', 'values.yaml'),
      ]);
    });

    it('when an artifact has a typo in a field, it refuses the file naming the field', async () => {
      const typo = brokenCopy('dockerfile:', 'dockerFile:');

      const outcome = await skaffoldRun(['diagnose', '--yaml-only', '--filename', typo]);

      expect(outcome.code).to.not.equal(0);
      expect(outcome.stdout + outcome.stderr).to.match(
        /field dockerFile not found in type latest\.DockerArtifact/,
      );
    });

    it('when the kind profile patches a path that does not exist, it refuses the profile', async () => {
      const typo = brokenCopy('path: /build/local/push', 'path: /build/locl/push');
      const args = ['diagnose', '--yaml-only', '--filename', typo];

      const outcome = await skaffoldRun([...args, '--profile', 'kind']);
      // The JSON schema cannot see this: only applying the profile finds it.
      const withoutProfile = await skaffoldRun(args);

      expect(outcome.code).to.not.equal(0);
      expect(outcome.stdout + outcome.stderr).to.include(
        'applying profile "kind": invalid path: /build/locl/push',
      );
      expect(withoutProfile.code, withoutProfile.stderr).to.equal(0);
    });
  });

  describe('skaffold render --digest-source=tag --offline', () => {
    const TAG = `test-${process.pid}`;
    const tagArgs = ['--profile', 'kind', '--tag', TAG, '--default-repo', DEFAULT_REPO];

    it('renders the chart with the kind profile and the image tags Skaffold computed', async () => {
      // What Skaffold computes for each artifact, from its own dry-run build (nothing is built).
      const buildsFile = path.join(scratch, 'builds.json');
      const dryRun = await skaffoldRun([
        'build',
        '--dry-run',
        ...tagArgs,
        '--file-output',
        buildsFile,
      ]);
      expect(dryRun.code, dryRun.stderr).to.equal(0);
      const { builds } = JSON.parse(readFileSync(buildsFile, 'utf8')) as {
        builds: { imageName: string; tag: string }[];
      };
      const computed = new Map(builds.map((b) => [b.imageName, b.tag]));
      expect([...computed.keys()].sort()).to.deep.equal(Object.keys(PLATFORM_IMAGES).sort());
      for (const tag of computed.values()) {
        expect(tag.startsWith(`${DEFAULT_REPO}/`) && tag.endsWith(`:${TAG}`), tag).to.equal(true);
      }

      const rendered = await skaffoldRun([
        'render',
        '--digest-source=tag',
        '--offline',
        ...tagArgs,
      ]);

      expect(rendered.code, rendered.stderr).to.equal(0);
      const manifests = parseAllDocuments(rendered.stdout)
        .map((document) => document.toJS() as Manifest | null)
        .filter((manifest): manifest is Manifest => manifest !== null);
      const imagesOf = (kind: string, name: string): string[] => {
        const manifest = manifests.find((m) => m.kind === kind && m.metadata.name === name);
        expect(manifest, `${kind} ${name}`).to.not.equal(undefined);
        const images = containersOf(podSpecOf(manifest ?? ({} as Manifest)) ?? {}).map(
          (c) => c.image,
        );
        expect(images, `${kind} ${name}`).to.have.length.greaterThan(0);
        return images;
      };
      for (const component of ['auth', 'organization', 'operator']) {
        for (const image of imagesOf('Deployment', `vextrus-${component}`)) {
          expect(image, component).to.equal(computed.get(`vextrus/${component}`));
        }
      }
      // Skaffold's post-renderer also rewrites the images of the Deployments; Helm 3 does not
      // post-render hooks, so the hook Job shows that the values templates carry the tags.
      const migrations = computed.get('vextrus/migrations');
      for (const image of imagesOf('Job', 'vextrus-migrate-platform')) {
        expect(image).to.equal(migrations);
      }
      for (const image of imagesOf('CronJob', 'vextrus-audit-retention')) {
        expect(image).to.equal(migrations);
      }
      // deploy/kind/values.yaml, from the kind profile: the development PostgreSQL.
      expect(imagesOf('StatefulSet', 'vextrus-postgresql')).to.have.length(1);
      // No platform image is left at the chart's default repository.
      const everyImage = manifests.flatMap((m) =>
        containersOf(podSpecOf(m) ?? {}).map((c) => c.image),
      );
      expect(everyImage.filter((image) => image.startsWith('vextrus/'))).to.deep.equal([]);
    });

    it('without the kind profile, the chart refuses to render and asks for a database host', async () => {
      const outcome = await skaffoldRun([
        'render',
        '--digest-source=tag',
        '--offline',
        '--tag',
        TAG,
      ]);

      expect(outcome.code).to.not.equal(0);
      expect(outcome.stdout + outcome.stderr).to.include('database.host is required');
    });

    it('with Helm 4 first on PATH, Skaffold v2.16.1 cannot render (why helm3 is built)', async () => {
      const helm4 = path.dirname(await toolPath('helm'));

      const outcome = await skaffoldRun(
        ['render', '--digest-source=tag', '--offline', ...tagArgs],
        {
          PATH: `${helm4}${path.delimiter}${env.PATH ?? ''}`,
        },
      );

      expect(outcome.code).to.not.equal(0);
      expect(outcome.stdout + outcome.stderr).to.include('running [helm version --client]');
      expect(outcome.stdout + outcome.stderr).to.include('unknown flag: --client');
    });
  });
});
