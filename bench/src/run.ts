import { tenantContext } from './benchmarks/tenant-context.js';
import { tokenVerification } from './benchmarks/token-verification.js';
import { login } from './benchmarks/login.js';
import { organizationList } from './benchmarks/organization-list.js';
import { controlPlane } from './benchmarks/control-plane.js';
import { audit } from './benchmarks/audit.js';
import { operatorBenchmark } from './benchmarks/operator.js';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Benchmark, BenchSettings, Figure } from './harness.js';
import { writeReport, type Failure } from './report.js';

/** Every benchmark, in the order of the report. */
export const BENCHMARKS: readonly Benchmark[] = [
  tenantContext,
  tokenVerification,
  login,
  organizationList,
  audit,
  controlPlane,
  operatorBenchmark,
];

export interface RunOptions {
  settings: BenchSettings;
  /** Names of the benchmarks to run; all when empty. */
  only: readonly string[];
  /** Folder of the report. */
  folder: string;
  command: string;
  log: (message: string) => void;
}

export interface RunResult {
  figures: Figure[];
  failures: Failure[];
  reportFile: string;
}

/**
 * Runs the chosen benchmarks one after another (never two at once: they would load each other)
 * and writes the report. A benchmark that throws is reported as not run; the others still run.
 */
export async function runBenchmarks(options: RunOptions): Promise<RunResult> {
  const unknown = options.only.filter((name) => !BENCHMARKS.some((b) => b.name === name));
  if (unknown.length > 0) {
    const known = BENCHMARKS.map((b) => b.name).join(', ');
    throw new Error(`unknown benchmark ${unknown.join(', ')}; known: ${known}`);
  }
  const chosen = BENCHMARKS.filter(
    (b) => options.only.length === 0 || options.only.includes(b.name),
  );
  const startedAt = new Date();
  const figures: Figure[] = [];
  const failures: Failure[] = [];
  for (const benchmark of chosen) {
    const measuredAt = new Date().toISOString();
    try {
      for (const figure of await benchmark.run({ settings: options.settings, log: options.log })) {
        figures.push({ ...figure, benchmark: benchmark.name, measuredAt });
      }
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      options.log(`${benchmark.name} failed: ${error}`);
      failures.push({ name: benchmark.name, issue: benchmark.issue, error });
    }
  }
  // Run by name, the report keeps the other benchmarks' figures of the report already there.
  const kept = options.only.length > 0 ? await earlierFigures(options.folder, chosen) : [];
  const reportFile = await writeReport(options.folder, {
    figures: [...figures, ...kept].sort((a, b) => order(a) - order(b)),
    failures,
    settings: options.settings,
    startedAt,
    finishedAt: new Date(),
    command: options.command,
  });
  return { figures, failures, reportFile };
}

function order(figure: Figure): number {
  return BENCHMARKS.findIndex((b) => b.name === figure.benchmark);
}

/** The figures in `folder`'s results.json that the benchmarks run now did not replace. */
async function earlierFigures(folder: string, chosen: readonly Benchmark[]): Promise<Figure[]> {
  const text = await readFile(path.join(folder, 'results.json'), 'utf8').catch(() => undefined);
  if (text === undefined) return [];
  const earlier = (JSON.parse(text) as { figures?: Figure[] }).figures ?? [];
  return earlier.filter((f) => f.benchmark && !chosen.some((b) => b.name === f.benchmark));
}
