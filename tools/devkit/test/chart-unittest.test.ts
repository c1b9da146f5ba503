import { expect } from 'chai';
import { execFile } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, toolPath } from '@vextrus/devkit';
import { CHART, helm } from './chart-helpers.js';

const run = promisify(execFile);

/*
 * The helm-unittest suites of charts/vextrus/tests/ run as a plugin of our Helm 4: the plugin
 * folder is tools/go/helm-unittest/plugin.yaml with the binary that tools/build-tools.sh built
 * linked beside it, installed with `helm plugin install <folder>` into this run's own Helm home.
 */
describe('the chart helm-unittest suites', function () {
  // The first build of helm-unittest takes minutes; that is `make test-tools`' job.
  this.timeout(300_000);
  const env: NodeJS.ProcessEnv = {};

  before(async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'vextrus-helm-unittest-'));
    const plugin = path.join(home, 'unittest');
    mkdirSync(plugin);
    cpSync(
      path.join(REPO_ROOT, 'tools', 'go', 'helm-unittest', 'plugin.yaml'),
      path.join(plugin, 'plugin.yaml'),
    );
    symlinkSync(await toolPath('helm-unittest'), path.join(plugin, 'untt'));
    env.HELM_DATA_HOME = path.join(home, 'data');
    env.HELM_CONFIG_HOME = path.join(home, 'config');
    env.HELM_CACHE_HOME = path.join(home, 'cache');
    const installed = await helm(['plugin', 'install', plugin], env);
    expect(installed.code, installed.stderr).to.equal(0);
  });

  it('pass, run by `helm unittest` as a plugin of our Helm', async () => {
    const outcome = await helm(['unittest', '--strict', CHART], env);
    expect(outcome.code, `${outcome.stdout}${outcome.stderr}`).to.equal(0);
    const suites = readdirSync(path.join(CHART, 'tests')).filter((f) => f.endsWith('_test.yaml'));
    expect(suites.length).to.be.greaterThanOrEqual(7);
    expect(outcome.stdout).to.match(new RegExp(`Test Suites:\\s+${suites.length} passed`));
    expect(outcome.stdout).to.not.match(/\bfailed\b/);
  });

  it('when a template grants a wildcard or loosens a container, the suites fail naming the rule', async () => {
    const broken = path.join(mkdtempSync(path.join(tmpdir(), 'vextrus-chart-broken-')), 'vextrus');
    cpSync(CHART, broken, { recursive: true });
    const edit = (file: string, from: string, to: string): void => {
      const target = path.join(broken, 'templates', file);
      const text = readFileSync(target, 'utf8');
      expect(text, `${file} contains ${from}`).to.include(from);
      writeFileSync(target, text.replace(from, to));
    };
    edit('operator-rbac.yaml', 'verbs: ["get", "list"]', 'verbs: ["get", "list", "*"]');
    edit('_helpers.tpl', 'allowPrivilegeEscalation: false', 'allowPrivilegeEscalation: true');

    const outcome = await helm(['unittest', '--strict', broken], env);

    expect(outcome.code).to.not.equal(0);
    expect(outcome.stdout).to.match(/FAIL\s+operator RBAC without wildcards/);
    expect(outcome.stdout).to.match(/FAIL\s+every Pod and container is locked down/);
    expect(outcome.stdout).to.match(/PASS\s+the migration hook/);
  });

  it('are left out of the packaged chart, and the helm test Pod is kept', async () => {
    const out = mkdtempSync(path.join(tmpdir(), 'vextrus-chart-package-'));
    const packaged = await helm(['package', CHART, '--destination', out]);
    expect(packaged.code, packaged.stderr).to.equal(0);
    const archive = readdirSync(out).find((f) => f.endsWith('.tgz')) ?? '';
    const { stdout } = await run('tar', ['-tzf', path.join(out, archive)]);
    const files = stdout.split('\n');
    expect(files.filter((f) => f.includes('_test.yaml'))).to.deep.equal([]);
    expect(files).to.include('vextrus/templates/tests/test-health.yaml');
    expect(files).to.include('vextrus/values.schema.json');
  });
});
