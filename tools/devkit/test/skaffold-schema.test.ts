import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv, type ErrorObject } from 'ajv';
import { parse } from 'yaml';
import { REPO_ROOT } from '@vextrus/devkit';

const run = promisify(execFile);
const BUILD_SCRIPT = path.join(REPO_ROOT, 'tools', 'build-tools.sh');
const SKAFFOLD_YAML = path.join(REPO_ROOT, 'skaffold.yaml');

/*
 * skaffold.yaml against Skaffold's published JSON schema, pinned at v2.16.1 (tools/go/skaffold):
 * the newest version the Go module proxy serves (it refuses the version list and v2.17.0 with
 * 403), whose newest config apiVersion is skaffold/v4beta13, so skaffold.yaml uses that one. The
 * schema is read from the Skaffold module in the Go module cache (no build needed) and checked
 * with ajv. skaffold-cli.test.ts runs the real Skaffold (`diagnose` and `render`).
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
});
