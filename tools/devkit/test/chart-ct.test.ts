import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, toolPath } from '@vextrus/devkit';
import { CHART, HELM_ENV } from './chart-helpers.js';

const run = promisify(execFile);

interface CtOutcome {
  code: number;
  output: string;
}

/*
 * chart-testing's `ct lint` with the repository's ct.yaml: yamale validates Chart.yaml against
 * ct's chart schema, yamllint checks Chart.yaml, values.yaml and every ci/*-values.yaml with ct's
 * lint rules, and `helm lint --strict` runs once per ci values file. ct finds helm, yamllint and
 * yamale on PATH: our Helm and the ct-linters virtualenv of tools/build-tools.sh.
 */
describe('chart-testing ct lint', function () {
  // The first build of ct and the linters' install take minutes: `make test-tools`' job.
  this.timeout(300_000);
  let ct = '';
  let searchPath = '';

  before(async () => {
    ct = await toolPath('ct');
    const helmDir = path.dirname(await toolPath('helm'));
    searchPath = [helmDir, await toolPath('ct-linters'), process.env.PATH ?? ''].join(':');
  });

  /** `ct lint` of charts/vextrus in `root` (a copy of the repository's chart and ct files). */
  async function ctLint(root: string): Promise<CtOutcome> {
    const args = ['lint', '--config', 'ct.yaml', '--charts', 'charts/vextrus'];
    args.push('--validate-maintainers=false');
    try {
      const { stdout, stderr } = await run(ct, args, {
        cwd: root,
        env: { ...HELM_ENV, PATH: searchPath },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 240_000,
      });
      return { code: 0, output: stdout + stderr };
    } catch (err) {
      const failure = err as { code?: number; stdout?: string; stderr?: string };
      const code = typeof failure.code === 'number' ? failure.code : 1;
      return { code, output: (failure.stdout ?? '') + (failure.stderr ?? '') };
    }
  }

  /** A folder with the chart, ct.yaml and tools/ct/ laid out as in the repository. */
  function copyOfRepository(): string {
    const root = mkdtempSync(path.join(tmpdir(), 'vextrus-ct-'));
    mkdirSync(path.join(root, 'charts'));
    cpSync(CHART, path.join(root, 'charts', 'vextrus'), { recursive: true });
    cpSync(path.join(REPO_ROOT, 'ct.yaml'), path.join(root, 'ct.yaml'));
    cpSync(path.join(REPO_ROOT, 'tools', 'ct'), path.join(root, 'tools', 'ct'), {
      recursive: true,
    });
    return root;
  }

  it('passes on the chart with its schema, YAML lint and every ci values file', async () => {
    const outcome = await ctLint(REPO_ROOT);

    expect(outcome.code, outcome.output).to.equal(0);
    expect(outcome.output).to.include('Validating charts/vextrus/Chart.yaml...');
    for (const file of ['minimal', 'full', 'existing-secrets', 'components-off']) {
      expect(outcome.output).to.include(`charts/vextrus/ci/${file}-values.yaml`);
    }
    expect(outcome.output).to.include('All charts linted successfully');
  });

  it('when Chart.yaml has a field outside the chart schema, yamale refuses it', async () => {
    const root = copyOfRepository();
    appendFileSync(path.join(root, 'charts', 'vextrus', 'Chart.yaml'), 'maintainer: nobody\n');

    const outcome = await ctLint(root);

    expect(outcome.code).to.not.equal(0);
    expect(outcome.output).to.include('maintainer: Unexpected element');
  });

  it('when a ci values file repeats a key, yamllint refuses it', async () => {
    const root = copyOfRepository();
    const values = 'database:\n  host: a.example.internal\n  host: b.example.internal\n';
    writeFileSync(path.join(root, 'charts', 'vextrus', 'ci', 'repeated-values.yaml'), values);

    const outcome = await ctLint(root);

    expect(outcome.code).to.not.equal(0);
    expect(outcome.output).to.match(/duplication of key "host" in mapping\s+\(key-duplicates\)/);
  });
});
