import { execFile } from 'node:child_process';
import { toolPath } from '../kube/binaries.js';

/**
 * Runs the tools cache's kubectl against `kubeconfig` and returns its standard output; `input`,
 * when given, is its standard input (for `apply -f -`). A failure carries kubectl's stderr.
 */
export async function kubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  const binary = await toolPath('kubectl');
  return new Promise((resolve, reject) => {
    const child = execFile(
      binary,
      ['--kubeconfig', kubeconfig, ...args],
      { maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`kubectl ${args.join(' ')}: ${stderr.trim() || error.message}`));
        } else {
          resolve(stdout);
        }
      },
    );
    child.stdin?.end(input ?? '');
  });
}
