import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../testing/process.js';

/** A platform component running as a child process, its output appended to a log file. */
export interface Child {
  name: string;
  logFile: string;
  process: ChildProcess;
  exited: Promise<number | string>;
  stop(timeoutMs?: number): Promise<void>;
  tail(lines?: number): Promise<string>;
}

export function startChild(
  name: string,
  entry: string,
  env: NodeJS.ProcessEnv,
  logDir: string,
): Child {
  const logFile = path.join(logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=vextrus-source', path.join(REPO_ROOT, entry)],
    { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      log.end();
      resolve(code ?? signal ?? 'unknown');
    });
  });
  return {
    name,
    logFile,
    process: child,
    exited,
    async stop(timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.kill('SIGTERM');
      await exited;
      clearTimeout(killer);
    },
    async tail(lines = 20) {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text.trimEnd().split('\n').slice(-lines).join('\n');
    },
  };
}

/** Polls `url` until it answers 200, the child exits, or the deadline passes. */
export async function waitHttpOk(child: Child, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  while (Date.now() < deadline && !exited) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const why = exited ? 'exited' : `was not ready within ${timeoutMs} ms`;
  throw new Error(`${child.name} ${why}; last lines of ${child.logFile}:\n${await child.tail()}`);
}
