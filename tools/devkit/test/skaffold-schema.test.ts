import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv, type ErrorObject } from 'ajv';
import { parse } from 'yaml';
import { REPO_ROOT, cachedToolPath } from '@vextrus/devkit';

const run = promisify(execFile);
const BUILD_SCRIPT = path.join(REPO_ROOT, 'tools', 'build-tools.sh');
const SKAFFOLD_YAML = path.join(REPO_ROOT, 'skaffold.yaml');

/*
 * skaffold.yaml against Skaffold itself, pinned at v2.16.1 (tools/go/skaffold): the newest
 * version the Go module proxy serves (it refuses the version list and v2.17.0 with 403), whose
 * newest config apiVersion is skaffold/v4beta13, so skaffold.yaml uses that one.
 *
 * 1. Skaffold's published JSON schema of v4beta13, read from the Skaffold module in the Go module
 *    cache (no build needed), with ajv: always.
 * 2. The real Skaffold's `skaffold diagnose --yaml-only`, which parses the file strictly and
 *    applies the profiles: only when Skaffold is built (`tools/build-tools.sh skaffold`, about
 *    20 minutes cold, so it is not part of `make test-tools`); otherwise the test is pending.
 *
 * NOTE: `skaffold render` is not checked. Skaffold v2.16.1 runs `helm version --client`, a flag
 * Helm 4 removed, so it refuses our Helm before rendering; it needs a Helm 3 or a newer Skaffold.
 */

function skaffoldConfig(): Record<string, unknown> {
  return parse(readFileSync(SKAFFOLD_YAML, 'utf8')) as Record<string, unknown>;
}

describe('skaffold.yaml against Skaffold v2.16.1', function () {
  // Downloading the Skaffold module (43 MB) the first time takes a while.
  this.timeout(300_000);

  describe("Skaffold's published JSON schema", () => {
    let validate: (data: unknown) => { valid: boolean; errors: ErrorObject[] };

    before(async () => {
      const { stdout } = await run(BUILD_SCRIPT, ['--skaffold-schema'], { timeout: 280_000 });
      const file = stdout.trim();
      expect(path.basename(file)).to.equal('v4beta13.json');
      const schema = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      // The schema carries IntelliJ and example keywords that ajv does not know; they say nothing.
      const ajv = new Ajv({ allErrors: true, strict: false });
      const check = ajv.compile(schema);
      validate = (data) => ({ valid: check(data), errors: check.errors ?? [] });
    });

    it('accepts skaffold.yaml, with its apiVersion', () => {
      const config = skaffoldConfig();
      expect(config.apiVersion).to.equal('skaffold/v4beta13');

      const { valid, errors } = validate(config);

      expect(valid, JSON.stringify(errors, null, 2)).to.equal(true);
    });

    it('when an artifact has a typo in a field, it refuses the field', () => {
      const config = skaffoldConfig() as { build: { artifacts: Record<string, unknown>[] } };
      const artifact = config.build.artifacts[0] ?? {};
      artifact.dockerFile = artifact.docker;
      delete artifact.docker;

      const { valid, errors } = validate(config);

      expect(valid).to.equal(false);
      const refused = errors.map(
        (e) => (e.params as { additionalProperty?: string }).additionalProperty,
      );
      expect(refused).to.include('dockerFile');
    });
  });

  describe('the real Skaffold', () => {
    let skaffold: string | undefined;

    before(async function () {
      skaffold = await cachedToolPath('skaffold');
      // Pending, not passing, when Skaffold is not built: the title says what to run.
      if (!skaffold) this.skip();
    });

    async function diagnose(
      file: string,
      args: string[] = [],
    ): Promise<{ code: number; out: string }> {
      try {
        const { stdout, stderr } = await run(
          skaffold ?? 'skaffold',
          ['diagnose', '--yaml-only', '--filename', file, ...args],
          { cwd: REPO_ROOT, env: { ...process.env, SKAFFOLD_UPDATE_CHECK: 'false' } },
        );
        return { code: 0, out: stdout + stderr };
      } catch (err) {
        const failure = err as { code?: number; stdout?: string; stderr?: string };
        const code = typeof failure.code === 'number' ? failure.code : 1;
        return { code, out: (failure.stdout ?? '') + (failure.stderr ?? '') };
      }
    }

    it('parses skaffold.yaml and applies the kind profile (build with tools/build-tools.sh skaffold)', async () => {
      const base = await diagnose(SKAFFOLD_YAML);
      expect(base.code, base.out).to.equal(0);
      const resolved = parse(base.out) as { build: { artifacts: { image: string }[] } };
      expect(resolved.build.artifacts.map((a) => a.image)).to.have.length(4);

      const kind = await diagnose(SKAFFOLD_YAML, ['--profile', 'kind']);
      expect(kind.code, kind.out).to.equal(0);
      const patched = parse(kind.out) as {
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
      const typo = path.join(
        mkdtempSync(path.join(tmpdir(), 'vextrus-skaffold-')),
        'skaffold.yaml',
      );
      writeFileSync(
        typo,
        readFileSync(SKAFFOLD_YAML, 'utf8').replace('dockerfile:', 'dockerFile:'),
      );

      const outcome = await diagnose(typo);

      expect(outcome.code).to.not.equal(0);
      expect(outcome.out).to.match(/field dockerFile not found in type latest\.DockerArtifact/);
    });
  });
});
