/**
 * Smoke check of the benchmark suite: every benchmark runs in smoke mode (a fraction of a
 * second per round) against the test PostgreSQL and the real control plane, and the report is
 * written. It proves the benchmarks still work; it asserts no speed.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { benchSettings } from '../src/harness.js';
import { BENCHMARKS, runBenchmarks, type RunResult } from '../src/run.js';

describe('benchmark suite (smoke mode)', function () {
  this.timeout(240_000);
  let folder: string;
  let result: RunResult;

  before(async () => {
    folder = await mkdtemp(path.join(tmpdir(), 'vextrus-bench-smoke-'));
    result = await runBenchmarks({
      settings: benchSettings({ VEXTRUS_BENCH_SMOKE: '1' }),
      only: [],
      folder,
      command: 'VEXTRUS_BENCH_SMOKE=1 make bench',
      log: () => undefined,
    });
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('when every benchmark runs, none of them fails', () => {
    expect(result.failures.map((f) => `${f.name}: ${f.error}`)).to.deep.equal([]);
    const issues = new Set(result.figures.map((f) => f.issue));
    expect([...issues].sort()).to.deep.equal([...new Set(BENCHMARKS.map((b) => b.issue))].sort());
  });

  it('should measure a positive, finite value in every round of every side', () => {
    // A smoke run's steady state is shorter than the operator's resync: it may count no request.
    const counts = new Set(['operator-api-requests']);
    for (const figure of result.figures) {
      const sides = [figure.subject, ...(figure.baseline ? [figure.baseline] : [])];
      for (const side of sides) {
        expect(side.samples, `${figure.id}: ${side.label}`).to.not.be.empty;
        for (const value of side.samples) {
          const least = counts.has(figure.id) ? value >= 0 : value > 0;
          expect(Number.isFinite(value) && least, `${figure.id}: ${side.label} = ${value}`).to.be
            .true;
        }
      }
    }
  });

  it('should write a report with every figure, its plot and whether its target is met', async () => {
    const report = await readFile(result.reportFile, 'utf8');
    const files = await readdir(folder);
    for (const figure of result.figures) {
      expect(files).to.include(`${figure.id}.svg`);
      expect(report).to.include(`(${figure.id}.svg)`);
      const svg = await readFile(path.join(folder, `${figure.id}.svg`), 'utf8');
      expect(svg).to.match(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    }
    expect(report).to.match(/Machine: \d+ cores/);
    expect(report).to.include(`Node.js ${process.version}`);
    expect(report).to.match(/Target: .*: \*\*(met|not met)\*\*/);
  });
});
