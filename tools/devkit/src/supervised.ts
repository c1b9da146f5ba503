import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { LogTail } from './log-tail.js';

/** setpriv (util-linux) makes the kernel kill a child when this process dies, even by SIGKILL. */
const SETPRIV = '/usr/bin/setpriv';

/** A long-running helper process whose last output lines are kept for error messages. */
export class Supervised {
  readonly tail = new LogTail(60);
  readonly child: ChildProcess;
  readonly exited: Promise<number | string>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: SpawnOptions = {},
  ) {
    const [cmd, argv] = existsSync(SETPRIV)
      ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', command, ...args]]
      : [command, args];
    this.child = spawn(cmd, argv, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (chunk: Buffer) => this.tail.push(chunk));
    this.child.stderr?.on('data', (chunk: Buffer) => this.tail.push(chunk));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      this.child.on('error', (err) => {
        this.tail.push(`cannot start ${command}: ${err.message}\n`);
        resolve('spawn-error');
      });
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal`, then SIGKILL if the process is still there after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    const killer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    this.child.kill(signal);
    await this.exited;
    clearTimeout(killer);
  }

  /** An error naming this process, with its last output lines. */
  failure(what: string): Error {
    return new Error(`${this.name} ${what}; its last output:\n${this.tail.text()}`);
  }
}

/**
 * Polls `probe` until it resolves true; fails early when `process` exits, or at the deadline,
 * with the process's last output.
 */
export async function waitFor(
  process: Supervised,
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!process.running) throw process.failure(`exited while waiting for ${what}`);
    if (await probe().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw process.failure(`did not become ready (${what}) within ${timeoutMs / 1000} s`);
}
