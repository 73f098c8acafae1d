/** The result table as Markdown: readable in a terminal, pasteable into docs/performance.md. */
import { fmtRatio, type RowReport, type WorkRow } from './report.ts';
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

/** A padded Markdown table; columns in `numeric` are right-aligned. */
function markdown(header: string[], body: string[][], numeric: (i: number) => boolean): string[] {
  const width = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`;
  const rule = width.map((w, i) => (numeric(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2)));
  return [line(header), `|${rule.join('|')}|`, ...body.map(line)];
}

const measured = (r: RowReport): boolean =>
  [r.chanlayer1, r.chanlayer3, r.cluster, r.channelsRedis, r.bare, r.ceiling].some(Boolean);

/** `notes`: run-specific lines (smaller quick-run sizes, failed runs) printed under the table. */
export function renderTable(all: RowReport[], notes: string[] = []): string {
  // Rows nothing was measured for (--only, skipped implementations) are left out.
  const rows = all.filter(measured);
  // The cluster columns only when a cluster run was measured: other tables keep their shape.
  const cluster = rows.some((r) => r.cluster);
  const header = [
    'scenario',
    'unit',
    'chanlayer 1 host',
    'chanlayer 3 hosts',
    ...(cluster ? ['chanlayer cluster'] : []),
    'channels_redis',
    'bare Node client',
    'Redis ceiling',
    '÷ channels_redis',
    '÷ ceiling',
    '3 hosts ÷ 1',
    ...(cluster ? ['cluster ÷ 3 hosts'] : []),
    'targets',
  ];
  const body = rows.map((r) => [
    r.label,
    r.unit,
    cell(r.chanlayer1, r.unit),
    cell(r.chanlayer3, r.unit),
    ...(cluster ? [cell(r.cluster, r.unit)] : []),
    cell(r.channelsRedis, r.unit),
    cell(r.bare, r.unit),
    cell(r.ceiling, r.unit),
    ratio(r.vsChannelsRedis),
    ratio(r.vsCeiling),
    ratio(r.threeVsOne),
    ...(cluster ? [ratio(r.clusterVsThree)] : []),
    [
      ...r.verdicts.map((v) => v.text),
      ...(r.bareVsChannelsRedis ? [`bare client ${ratio(r.bareVsChannelsRedis)} CR`] : []),
    ].join('; ') || '—',
  ]);
  const ceilings = rows.filter((r) => r.ceilingLabel).map((r) => `- ${r.label}: ${r.ceilingLabel}`);
  return [
    ...markdown(header, body, (i) => i >= 2 && i < header.length - 1),
    '',
    'Medians of the repetitions, (min–max) when more than one. Ratios: chanlayer 1 host ÷ the',
    'column (and chanlayer 3 hosts ÷ 1 host), taken per repetition, then the median. Targets',
    '(per row): CR = ÷ channels_redis, ceil = ÷ Redis ceiling, 3h/1h = "3 hosts no worse than',
    '1 host" with 10% slack for noise; ✓ met, ✗ missed (by the factor shown), · not measured.',
    'Bare Node client: the same scenario code against a client with no layer (bench/bare/), doing',
    "only the protocol's own work: the floor of that row on this machine.",
    ...(cluster
      ? [
          'Cluster: chanlayer on a 3-master Redis Cluster (no replicas), run right after its 3-host',
          'run; cl/3h = cluster ÷ 3 hosts, ≥0.80× wanted (a latency row: ≤1.25×).',
        ]
      : []),
    'Redis ceiling of each row:',
    ...ceilings,
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}

const per = (n: number): string =>
  n >= 10 ? n.toFixed(0) : n >= 0.1 ? n.toFixed(2) : n.toFixed(3);

/** The "where the time goes" table: Redis commands and Redis CPU per delivered message. */
export function renderWork(rows: WorkRow[]): string {
  const header = [
    'run',
    'commands/msg',
    'of which scripts',
    'Redis CPU µs/msg',
    'client CPU µs/msg',
    'commands per message',
  ];
  const body = rows.map((r) => [
    r.run,
    per(r.commands),
    per(r.scripts),
    per(r.cpuUs),
    r.clientCpuUs === undefined ? '—' : per(r.clientCpuUs),
    r.breakdown
      .filter(([, v]) => v >= 0.005)
      .slice(0, 12)
      .map(([k, v]) => `${k} ${per(v)}`)
      .join(', '),
  ]);
  return [
    ...markdown(header, body, (i) => i >= 1 && i <= 4),
    '',
    'Per message delivered, warm-up and setup (groupAdd) included, summed over every server',
    'and repetition. Commands run inside Lua scripts are counted too (Redis does not tell them',
    'apart), so a script call and its inner commands both appear; round trips are at most',
    'commands − inner commands. Client CPU: the whole client process (user + system), setup',
    "and warm-up included, so it is an upper bound for the layer's own cost.",
  ].join('\n');
}
