/** The result table as Markdown: readable in a terminal, pasteable into docs/performance.md. */
import { fmtRatio, type RowReport } from './report.ts';
import type { Summary } from './stats.ts';

/** Figures to a sensible precision: rates as integers, latencies to 3 significant digits. */
export function fmtValue(n: number, unit: RowReport['unit']): string {
  if (unit === 'msg/s') return Math.round(n).toLocaleString('en-US');
  if (unit === 'MB') return n.toFixed(1);
  if (n >= 100) return n.toFixed(0);
  return Number(n.toPrecision(3)).toString();
}

function cell(s: Summary | undefined, unit: RowReport['unit']): string {
  if (!s) return '—';
  const median = fmtValue(s.median, unit);
  return s.n > 1 ? `${median} (${fmtValue(s.min, unit)}–${fmtValue(s.max, unit)})` : median;
}

const ratio = (s: Summary | undefined): string => (s ? fmtRatio(s.median) : '—');

export function renderTable(rows: RowReport[]): string {
  const header = [
    'scenario',
    'unit',
    'chanlayer 1 host',
    'chanlayer 3 hosts',
    'channels_redis',
    'Redis ceiling',
    '÷ channels_redis',
    '÷ ceiling',
    '3 hosts ÷ 1',
    'targets',
  ];
  const body = rows.map((r) => [
    r.label,
    r.unit,
    cell(r.chanlayer1, r.unit),
    cell(r.chanlayer3, r.unit),
    cell(r.channelsRedis, r.unit),
    cell(r.ceiling, r.unit),
    ratio(r.vsChannelsRedis),
    ratio(r.vsCeiling),
    ratio(r.threeVsOne),
    r.verdicts.map((v) => v.text).join('; ') || '—',
  ]);
  const width = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`;
  const rule = `|${width.map((w, i) => (i >= 2 && i <= 8 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  const ceilings = rows.filter((r) => r.ceilingLabel).map((r) => `- ${r.label}: ${r.ceilingLabel}`);
  return [
    line(header),
    rule,
    ...body.map(line),
    '',
    'Medians of the repetitions, (min–max) when more than one. Ratios: chanlayer 1 host ÷ the',
    'column (and chanlayer 3 hosts ÷ 1 host), taken per repetition, then the median. Targets',
    '(issue 9): CR = ÷ channels_redis, ceil = ÷ Redis ceiling, 3h/1h = "3 hosts no worse than',
    '1 host" with 10% slack for noise; ✓ met, ✗ missed (by the factor shown), · not measured.',
    'Redis ceiling of each row:',
    ...ceilings,
  ].join('\n');
}
