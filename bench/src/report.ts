import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { format, resolveConfig } from 'prettier';
import { figureStats, type BenchSettings, type Figure } from './harness.js';
import { figureSvg } from './svg.js';

/** A benchmark that could not run, and why: the report says so instead of leaving it out. */
export interface Failure {
  name: string;
  issue: number;
  error: string;
}

export interface Report {
  figures: Figure[];
  failures: Failure[];
  settings: BenchSettings;
  startedAt: Date;
  finishedAt: Date;
  /** The command that reproduces the whole report. */
  command: string;
}

function number(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  return value.toPrecision(3);
}

function machine(): string {
  const cpus = os.cpus();
  const memory = (os.totalmem() / 2 ** 30).toFixed(1);
  return (
    `${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), ${memory} GiB memory, ` +
    `${os.type()} ${os.release()}, Node.js ${process.version}`
  );
}

/** The command that reproduces one benchmark's figures. */
function figureCommand(report: Report, figure: Figure): string {
  const smoke = report.settings.smoke ? 'VEXTRUS_BENCH_SMOKE=1 ' : '';
  const env = `${smoke}BENCH_ROUNDS=${report.settings.rounds} BENCH_SECONDS=${report.settings.seconds}`;
  return `${env} make bench BENCH=${figure.benchmark ?? figure.id}`;
}

function figureSection(report: Report, figure: Figure): string[] {
  const stats = figureStats(figure);
  const rows = [
    '| Side | Median | Min | Max | IQR | Rounds |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const row = (label: string, s: typeof stats.subject): string =>
    `| ${label} | ${number(s.median)} | ${number(s.min)} | ${number(s.max)} | ` +
    `${number(s.p25)}–${number(s.p75)} | ${s.count} |`;
  rows.push(row(`**${figure.subject.label}**`, stats.subject));
  if (figure.baseline && stats.baseline) rows.push(row(figure.baseline.label, stats.baseline));
  const lines = [
    `### ${figure.title} (issue ${figure.issue})`,
    '',
    `![${figure.title}](${figure.id}.svg)`,
    '',
    `Unit: ${figure.unit}; ${figure.better} is better.`,
    '',
    ...rows,
    '',
  ];
  if (stats.ratio !== undefined) {
    lines.push(`Ratio subject / baseline (medians): **${stats.ratio.toFixed(2)}**.`, '');
  }
  for (const [key, value] of Object.entries(figure.details ?? {})) lines.push(`- ${key}: ${value}`);
  if (figure.details) lines.push('');
  lines.push(
    figure.target
      ? `Target: ${figure.target.text}: **${figure.target.met ? 'met' : 'not met'}**.`
      : 'Target: none set by the issue.',
    '',
    figure.method,
    '',
    `Measured: ${figure.measuredAt ?? report.startedAt.toISOString()}. Command: \`${figureCommand(report, figure)}\``,
    '',
  );
  return lines;
}

/**
 * Writes `README.md` (the report), one SVG per figure and `results.json` (every sample) into
 * `folder`.
 */
export async function writeReport(folder: string, report: Report): Promise<string> {
  await mkdir(folder, { recursive: true });
  const seconds = ((report.finishedAt.getTime() - report.startedAt.getTime()) / 1000).toFixed(0);
  const summary = [
    '| Figure | Issue | Subject (median) | Baseline (median) | Ratio | Target | Met |',
    '| --- | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  for (const figure of report.figures) {
    const stats = figureStats(figure);
    summary.push(
      `| [${figure.title}](#${figure.id}) | ${figure.issue} | ${number(stats.subject.median)} | ` +
        `${number(stats.baseline?.median)} | ${stats.ratio?.toFixed(2) ?? '—'} | ` +
        `${figure.target?.text ?? '—'} | ${figure.target ? (figure.target.met ? 'yes' : '**no**') : '—'} |`,
    );
  }
  for (const failure of report.failures) {
    summary.push(`| ${failure.name} | ${failure.issue} | failed | — | — | — | **did not run** |`);
  }
  const lines = [
    '# Vextrus benchmark report',
    '',
    `- Date: ${report.startedAt.toISOString()} (took ${seconds} s); a figure measured in an ` +
      'earlier run (`make bench BENCH=…` replaces only the figures of the benchmarks named) ' +
      'says so under it',
    `- Machine: ${machine()}`,
    `- Command: \`${report.command}\``,
    `- Rounds: ${report.settings.rounds} of each side, interleaved (A B A B …); load runs of ` +
      `${report.settings.seconds} s${report.settings.smoke ? '; SMOKE MODE: these figures only prove the benchmarks run' : ''}`,
    '',
    'Each benchmark runs its subject and its baseline alternately in the same run, against a ' +
      'throw-away embedded PostgreSQL (and, for the control plane, the real etcd and ' +
      'kube-apiserver), with load only to 127.0.0.1. Medians are over rounds; the spread is the ' +
      'minimum, maximum and interquartile range of the rounds. This machine is shared with ' +
      'other work, so single figures are noisy: compare a subject with the baseline of the same ' +
      'run rather than with another run.',
    '',
    '## Summary',
    '',
    ...summary,
    '',
    '## Figures',
    '',
  ];
  for (const figure of report.figures) {
    lines.push(`<a id="${figure.id}"></a>`, '');
    lines.push(...figureSection(report, figure));
    await writeFile(path.join(folder, `${figure.id}.svg`), figureSvg(figure));
  }
  if (report.failures.length > 0) {
    lines.push('## Benchmarks that did not run', '');
    for (const failure of report.failures) {
      lines.push(`- ${failure.name} (issue ${failure.issue}): ${failure.error.split('\n')[0]}`);
    }
    lines.push('');
  }
  // Written as the repository's Prettier would, so that `make lint` accepts a new report.
  const file = path.join(folder, 'README.md');
  const options = (await resolveConfig(file)) ?? {};
  await writeFile(file, await format(lines.join('\n'), { ...options, parser: 'markdown' }));
  const json = JSON.stringify({ ...report, machine: machine() });
  await writeFile(
    path.join(folder, 'results.json'),
    await format(json, { ...options, parser: 'json' }),
  );
  return file;
}
