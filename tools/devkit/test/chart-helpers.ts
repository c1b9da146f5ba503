import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT, toolPath } from '@vextrus/devkit';

const run = promisify(execFile);

export const CHART = path.join(REPO_ROOT, 'charts', 'vextrus');

/** The values files every check renders: the chart's ci/ folder, as chart-testing reads it. */
export const VALUES_FILES = [
  'minimal-values.yaml',
  'full-values.yaml',
  'existing-secrets-values.yaml',
  'components-off-values.yaml',
].map((name) => path.join(CHART, 'ci', name));

/** A rendered Kubernetes object, loosely typed: the checks walk whatever the chart produced. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface HelmOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

// Helm keeps its caches and repositories in temporary folders, never the user's.
const helmHome = mkdtempSync(path.join(tmpdir(), 'vextrus-helm-'));
export const HELM_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  HELM_CACHE_HOME: path.join(helmHome, 'cache'),
  HELM_CONFIG_HOME: path.join(helmHome, 'config'),
  HELM_DATA_HOME: path.join(helmHome, 'data'),
};

/** Runs the Helm built by tools/build-tools.sh; never throws, the outcome carries the exit code. */
export async function helm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<HelmOutcome> {
  const binary = await toolPath('helm');
  try {
    const { stdout, stderr } = await run(binary, args, {
      env: { ...HELM_ENV, ...env },
      maxBuffer: 32 * 1024 * 1024,
      timeout: 300_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failure = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failure.code === 'number' ? failure.code : 1,
      stdout: failure.stdout ?? '',
      stderr: failure.stderr ?? '',
    };
  }
}

/** `helm template` of the chart; fails with Helm's message when it does not render. */
export async function render(args: string[], namespace = 'vextrus'): Promise<Manifest[]> {
  const outcome = await helm(['template', 'vextrus', CHART, '--namespace', namespace, ...args]);
  if (outcome.code !== 0) throw new Error(`helm template ${args.join(' ')}: ${outcome.stderr}`);
  return parseAllDocuments(outcome.stdout)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

/** The Pod spec of a workload (Deployment, StatefulSet, Job, CronJob) or Pod; else undefined. */
export function podSpecOf(manifest: Manifest): Record<string, unknown> | undefined {
  type Node = { spec?: Record<string, unknown> } & Record<string, unknown>;
  switch (manifest.kind) {
    case 'Pod':
      return manifest.spec;
    case 'Deployment':
    case 'StatefulSet':
    case 'Job':
      return (manifest.spec?.template as Node | undefined)?.spec;
    case 'CronJob': {
      const jobTemplate = manifest.spec?.jobTemplate as Node | undefined;
      return (jobTemplate?.spec?.template as Node | undefined)?.spec;
    }
    default:
      return undefined;
  }
}

/** Name and security context of each container (init containers included) of a Pod spec. */
export function containersOf(
  spec: Record<string, unknown>,
): { name: string; image: string; securityContext?: Record<string, unknown> }[] {
  const list = (key: string): unknown[] => (Array.isArray(spec[key]) ? spec[key] : []);
  return [...list('initContainers'), ...list('containers')] as {
    name: string;
    image: string;
    securityContext?: Record<string, unknown>;
  }[];
}
