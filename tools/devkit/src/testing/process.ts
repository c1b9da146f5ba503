import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root folder. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

export interface SpawnedProcess {
  child: ChildProcess;
  /** Everything written to standard output and error so far. */
  output(): string;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  exited: Promise<number | string>;
  /** Resolves once `predicate` holds for the output so far; rejects after `timeoutMs`. */
  waitForOutput(predicate: (output: string) => boolean, timeoutMs?: number): Promise<void>;
}

/**
 * Runs a TypeScript entry point of this repository (from source, as the tests do) in a child
 * process with the given environment added to a minimal one.
 */
export function spawnTs(
  entry: string,
  env: NodeJS.ProcessEnv,
  args: string[] = [],
): SpawnedProcess {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=vextrus-source', path.resolve(REPO_ROOT, entry), ...args],
    {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const listeners = new Set<() => void>();
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
    for (const listener of listeners) listener();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  return {
    child,
    output: () => output,
    exited,
    waitForOutput(predicate, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!predicate(output)) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for output:\n${output}`));
        }, timeoutMs);
        listeners.add(check);
        void exited.then(() => {
          if (listeners.has(check)) {
            listeners.delete(check);
            clearTimeout(timer);
            reject(new Error(`process exited while waiting for output:\n${output}`));
          }
        });
        check();
      });
    },
  };
}

export interface CommandOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a TypeScript entry point of this repository to completion (e.g. the migrations CLI). */
export function runTs(
  entry: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--conditions=vextrus-source', path.resolve(REPO_ROOT, entry), ...args],
      { cwd: REPO_ROOT, env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs the migrations CLI (vextrus-migrate) with `args`. */
export function runMigrationsCli(args: string[], env: NodeJS.ProcessEnv): Promise<CommandOutcome> {
  return runTs('migrations/src/cli.ts', args, env);
}
