import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../testing/process.js';

const run = promisify(execFile);

export type ToolName =
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kubectl'
  | 'helm'
  | 'traefik'
  | 'helm-unittest'
  | 'ct'
  | 'ct-linters'
  | 'kind-config'
  | 'skaffold'
  | 'helm3'
  | 'node24';

const BUILD_SCRIPT = path.join(REPO_ROOT, 'tools', 'build-tools.sh');

/**
 * The absolute path of a tool built from Go modules by tools/build-tools.sh (for ct-linters: the
 * bin folder of its yamllint + yamale virtualenv; for node24: the Node 24 binary fetched from npm),
 * building it first when it is not in the cache yet (the first build of the Kubernetes binaries
 * takes many minutes).
 */
export async function toolPath(tool: ToolName): Promise<string> {
  try {
    const { stdout } = await run(BUILD_SCRIPT, ['--path', tool], {
      maxBuffer: 16 * 1024 * 1024,
      timeout: 60 * 60 * 1000,
    });
    return stdout.trim();
  } catch (err) {
    const detail = (err as { stderr?: string }).stderr?.trim().split('\n').slice(-15).join('\n');
    throw new Error(`cannot build or find ${tool} with tools/build-tools.sh:\n${detail ?? ''}`, {
      cause: err,
    });
  }
}

/** Whether a built tool is already in the cache (never builds). */
export async function cachedToolPath(tool: ToolName): Promise<string | undefined> {
  try {
    const { stdout } = await run(BUILD_SCRIPT, ['--path', '--no-build', tool]);
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}
