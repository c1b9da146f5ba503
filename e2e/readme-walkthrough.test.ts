/**
 * The README's walkthrough block, run with bash exactly as written, against the local platform
 * of `make up` in a temporary folder: only the data folder and the gateway's address are
 * replaced by this run's. It keeps the README copy-paste true. The one simulated part is the
 * control plane's local node (migration Jobs run as local processes).
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { toolPath } from '../tools/devkit/src/kube/binaries.js';
import { REPO_ROOT } from '../tools/devkit/src/testing/process.js';
import { skipWithoutGateway, startTestPlatform, type TestPlatform } from './test-platform.js';

async function walkthroughBlock(): Promise<string> {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Walkthrough'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('README.md has no sh block under "## Walkthrough"');
  return block;
}

function bash(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', `set -euo pipefail\n${script}`], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => resolve({ code: code ?? 1, output }));
  });
}

describe('the README walkthrough block', function () {
  this.timeout(240_000);
  let test: TestPlatform | undefined;

  before(async function () {
    this.timeout(600_000);
    test = await startTestPlatform();
  });

  after(async function () {
    this.timeout(60_000);
    await test?.stop();
  });

  it('runs as written against make up, and every step answers what its comment says', async function () {
    const { platform, dataDir } = test as TestPlatform;
    // The block goes through the gateway; without Traefik it cannot run as written.
    skipWithoutGateway(this, platform);
    const gateway = new URL(platform.url('gateway')).host;
    const script = (await walkthroughBlock())
      .replaceAll('$PWD/.data', dataDir)
      .replaceAll('cat .data/', `cat ${dataDir}/`)
      .replaceAll('127.0.0.1:8080', gateway);
    const kubectlDir = path.dirname(await toolPath('kubectl'));
    const env = {
      ...process.env,
      PATH: `${kubectlDir}:${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    };

    const { code, output } = await bash(script, env);

    expect(code, output).to.equal(0);
    expect(output).to.include('tenant.platform.vextrus.dev/initech condition met');
    expect(output).to.include('"code":"FORBIDDEN"');
    expect(output).to.include('"valid":true');
    expect(output).to.include('"code":"NOT_FOUND"');
    expect(output).to.include('"code":"TENANT_MISMATCH"');
    expect(output).to.include('404 page not found');
    expect(output).to.include('"schema": "tenant_initech"');
  });
});
