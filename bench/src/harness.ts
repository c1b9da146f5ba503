import { msSince, summarize, type Summary } from './stats.js';

/** How long and how often benchmarks run: the full report, or the smoke check of `make test`. */
export interface BenchSettings {
  smoke: boolean;
  /** Rounds of each side, interleaved A B A B …. */
  rounds: number;
  /** Length of one timed load run, in seconds. */
  seconds: number;
}

export function benchSettings(env: NodeJS.ProcessEnv = process.env): BenchSettings {
  const smoke = env.VEXTRUS_BENCH_SMOKE === '1';
  return {
    smoke,
    rounds: Number(env.BENCH_ROUNDS ?? (smoke ? 2 : 5)),
    seconds: Number(env.BENCH_SECONDS ?? (smoke ? 0.5 : 5)),
  };
}

/** One side of a comparison: what it is and its value in each round. */
export interface Series {
  label: string;
  samples: number[];
}

/** A target from the issue, and whether this run met it. */
export interface Target {
  text: string;
  met: boolean;
}

/** One figure of the report: a subject, usually its baseline from the same run, and a target. */
export interface Figure {
  id: string;
  issue: number;
  title: string;
  unit: string;
  /** Whether a larger value is the better one (throughput) or a smaller one (latency). */
  better: 'higher' | 'lower';
  subject: Series;
  baseline?: Series;
  target?: Target;
  /** What was measured and how, in a sentence or two. */
  method: string;
  /** Further measured values worth showing (p99, error counts, …). */
  details?: Record<string, string>;
  /** Set by the runner: the benchmark that made the figure, and when it started (ISO 8601). */
  benchmark?: string;
  measuredAt?: string;
}

export interface FigureStats {
  subject: Summary;
  baseline?: Summary;
  /** subject median / baseline median. */
  ratio?: number;
}

export function figureStats(figure: Figure): FigureStats {
  const subject = summarize(figure.subject.samples);
  if (!figure.baseline) return { subject };
  const baseline = summarize(figure.baseline.samples);
  return { subject, baseline, ratio: subject.median / baseline.median };
}

/**
 * Runs the subject and the baseline alternately, `rounds` times each (A B A B …), so that load
 * from outside the benchmark on this shared machine falls on both sides alike. Each function
 * returns the value of one round.
 */
export async function interleave(
  rounds: number,
  subject: () => Promise<number>,
  baseline: () => Promise<number>,
): Promise<{ subject: number[]; baseline: number[] }> {
  const result = { subject: [] as number[], baseline: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    result.subject.push(await subject());
    result.baseline.push(await baseline());
  }
  return result;
}

/** Runs fn `rounds` times and returns the duration of each run in milliseconds. */
export async function timeRounds(rounds: number, fn: () => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = process.hrtime.bigint();
    await fn();
    samples.push(msSince(started));
  }
  return samples;
}

/** Everything a benchmark gets: the settings and a PostgreSQL cluster to create databases on. */
export interface BenchContext {
  settings: BenchSettings;
  /** Progress lines for the person running `make bench`. */
  log: (message: string) => void;
}

export interface Benchmark {
  /** Short name, used to select benchmarks on the command line. */
  name: string;
  issue: number;
  run(context: BenchContext): Promise<Figure[]>;
}
