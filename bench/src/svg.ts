import type { Figure } from './harness.js';
import { summarize } from './stats.js';

const WIDTH = 720;
const LEFT = 20;
const RIGHT = 30;
const ROW = 56;
const TOP = 28;

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A round, readable tick step for an axis from 0 to `max`. */
function tickStep(max: number): number {
  const rough = max / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  return step ?? rough;
}

function format(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3);
}

/**
 * A strip plot of one figure: one row per side, a dot for each round and a bar at the median,
 * on an axis from zero so that ratios read true.
 */
export function figureSvg(figure: Figure): string {
  const series = [figure.subject, ...(figure.baseline ? [figure.baseline] : [])];
  const values = series.flatMap((s) => s.samples).filter(Number.isFinite);
  const step = tickStep(Math.max(...values, 1e-9) * 1.05);
  const max = Math.ceil((Math.max(...values, 1e-9) * 1.05) / step) * step;
  const x = (value: number): number => LEFT + ((WIDTH - LEFT - RIGHT) * value) / max;
  const height = TOP + series.length * ROW + 34;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
      `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="${LEFT}" y="16" font-weight="bold">${escape(figure.title)}</text>`,
  ];
  series.forEach((side, index) => {
    const y = TOP + index * ROW + 30;
    const colour = index === 0 ? '#1f77b4' : '#ff7f0e';
    const median = summarize(side.samples).median;
    parts.push(
      `<text x="${LEFT}" y="${y - 14}">${escape(side.label)}: median ${format(median)}</text>`,
      `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
    );
    for (const value of side.samples) {
      parts.push(
        `<circle cx="${x(value).toFixed(1)}" cy="${y}" r="4" fill="${colour}" fill-opacity="0.6"/>`,
      );
    }
    if (Number.isFinite(median)) {
      const mx = x(median).toFixed(1);
      parts.push(
        `<line x1="${mx}" x2="${mx}" y1="${y - 9}" y2="${y + 9}" stroke="${colour}" stroke-width="3"/>`,
      );
    }
  });
  const axis = TOP + series.length * ROW + 6;
  parts.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${axis}" y2="${axis}" stroke="#333"/>`);
  for (let tick = 0; tick <= max + step / 2; tick += step) {
    const tx = x(tick).toFixed(1);
    parts.push(
      `<line x1="${tx}" x2="${tx}" y1="${axis}" y2="${axis + 4}" stroke="#333"/>`,
      `<text x="${tx}" y="${axis + 16}" text-anchor="middle">${format(tick)}</text>`,
    );
  }
  parts.push(
    `<text x="${WIDTH - RIGHT}" y="${axis + 30}" text-anchor="end">${escape(figure.unit)}</text>`,
    '</svg>',
    '',
  );
  return parts.join('\n');
}
