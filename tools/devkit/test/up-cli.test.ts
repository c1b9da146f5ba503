import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runTs } from '../src/index.js';

/*
 * `make up` (tools/devkit/src/cli/up.ts) started while another one runs with the same data
 * folder. The running one is stood in for by a process whose command line names cli/up.ts, so
 * that the refusal is tested without starting a whole platform.
 */
describe('make up while another make up runs', function () {
  this.timeout(60_000);
  let dataDir: string;
  let running: ChildProcess | undefined;

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'vextrus-up-'));
  });

  afterEach(async () => {
    running?.kill('SIGKILL');
    running = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  it('refuses to start, names the running one, and leaves its pid file alone', async () => {
    running = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'cli/up.ts'], {
      stdio: 'ignore',
    });
    const pidFile = path.join(dataDir, 'up.pid');
    await writeFile(pidFile, `${running.pid}\n`);

    const second = await runTs('tools/devkit/src/cli/up.ts', [], { VEXTRUS_DATA_DIR: dataDir });

    expect(second.code).to.equal(1);
    expect(second.stderr).to.contain(
      `The platform is already running (make up, pid ${running.pid}`,
    );
    expect(second.stderr).to.contain('make down');
    expect(second.stdout).not.to.contain('PostgreSQL');
    expect(await readFile(pidFile, 'utf8')).to.equal(`${running.pid}\n`);
  });
});
