/**
 * Bar charts of the report as plain SVG strings (no dependency): one chart of throughput, one
 * of latency, each grouping chanlayer (1 and 3 hosts), channels_redis and the Redis ceiling per
 * scenario. Horizontal bars on a log scale, because the figures span three orders of magnitude
 * (channels_redis at ~1k msg/s, PUBLISH at ~500k); whiskers show the min–max of the reps.
 */
import { fmtRatio, type RowReport } from './report.ts';
import type { Summary } from './stats.ts';
import { fmtValue } from './table.ts';

interface Series {
  name: string;
  color: string;
  pick: (r: RowReport) => Summary | undefined;
}

const SERIES: Series[] = [
  { name: 'chanlayer, 1 host', color: '#2563eb', pick: (r) => r.chanlayer1 },
  { name: 'chanlayer, 3 hosts', color: '#93c5fd', pick: (r) => r.chanlayer3 },
  { name: 'chanlayer, Redis Cluster', color: '#16a34a', pick: (r) => r.cluster },
  { name: 'channels_redis 4.0', color: '#ea580c', pick: (r) => r.channelsRedis },
  { name: 'Redis ceiling (redis-benchmark)', color: '#9ca3af', pick: (r) => r.ceiling },
];

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const BAR = 13;
const BAR_GAP = 2;
const GROUP_GAP = 18;
const LEFT = 230;
const PLOT = 520;
const RIGHT = 200;
const TOP = 100;
const WIDTH = LEFT + PLOT + RIGHT;

const tickLabel = (v: number): string =>
  v >= 1e6 ? `${v / 1e6}M` : v >= 1e3 ? `${v / 1e3}k` : String(v);

/** One chart; `subtitle` says what the figures are and which way is better. */
export function barChart(title: string, subtitle: string, rows: RowReport[]): string {
  const groups = rows
    .map((r) => ({ row: r, bars: SERIES.map((s) => ({ s, v: s.pick(r) })).filter((b) => b.v) }))
    .filter((g) => g.bars.length > 0);
  const values = groups.flatMap((g) => g.bars.flatMap((b) => [b.v!.min, b.v!.max]));
  const positive = values.filter((v) => v > 0);
  // Whole decades around the data: the axis starts at the decade below the smallest figure.
  const lo = Math.floor(Math.log10(positive.length ? Math.min(...positive) : 1));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(positive.length ? Math.max(...positive) : 10)));
  const x = (v: number): number =>
    LEFT + ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo || 1)) * PLOT;

  const out: string[] = [];
  let y = TOP;
  for (const g of groups) {
    const h = g.bars.length * (BAR + BAR_GAP) - BAR_GAP;
    out.push(
      `<text x="${LEFT - 10}" y="${y + h / 2}" text-anchor="end" dominant-baseline="middle" ` +
        `class="label">${esc(g.row.short)}</text>`,
    );
    for (const { s, v } of g.bars) {
      const w = Math.max(1, x(v!.median) - LEFT);
      const mid = y + BAR / 2;
      out.push(
        `<rect x="${LEFT}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" fill="${s.color}">`,
      );
      out.push(
        `<title>${esc(`${s.name}: ${fmtValue(v!.median, g.row.unit)} ${g.row.unit}`)}</title></rect>`,
      );
      if (v!.n > 1 && v!.max > v!.min) {
        const [x1, x2] = [x(v!.min), x(v!.max)];
        out.push(
          `<path d="M${x1.toFixed(1)},${mid}H${x2.toFixed(1)}M${x1.toFixed(1)},${mid - 3}v6` +
            `M${x2.toFixed(1)},${mid - 3}v6" class="whisker"/>`,
        );
      }
      const labelX = Math.max(x(v!.median), x(v!.max)) + 5;
      // The chanlayer bar also says how it compares with channels_redis (the issue's ratio).
      const vs = s === SERIES[0] && g.row.vsChannelsRedis;
      const ratio = vs ? ` (${fmtRatio(vs.median)} channels_redis)` : '';
      out.push(
        `<text x="${labelX.toFixed(1)}" y="${mid}" dominant-baseline="middle" class="value">` +
          `${esc(`${fmtValue(v!.median, g.row.unit)} ${g.row.unit}${ratio}`)}</text>`,
      );
      y += BAR + BAR_GAP;
    }
    y += GROUP_GAP - BAR_GAP;
  }
  const bottom = y - GROUP_GAP + 8;
  const height = bottom + 30;

  const axis: string[] = [];
  for (let e = lo; e <= hi; e++) {
    const tx = x(10 ** e);
    axis.push(`<line x1="${tx}" y1="${TOP - 6}" x2="${tx}" y2="${bottom}" class="grid"/>`);
    axis.push(
      `<text x="${tx}" y="${bottom + 16}" text-anchor="middle" class="tick">${tickLabel(10 ** e)}</text>`,
    );
  }
  // Only the series drawn; a fifth (the cluster) makes it three columns, still above TOP.
  const shown = SERIES.filter((s) => groups.some((g) => g.bars.some((b) => b.s === s)));
  const columns = shown.length > 4 ? 3 : 2;
  const legend = shown.map((s, i) => {
    const lx = LEFT + (i % columns) * (columns === 3 ? 240 : 260);
    const ly = 64 + Math.floor(i / columns) * 16;
    return (
      `<rect x="${lx}" y="${ly - 9}" width="11" height="11" fill="${s.color}"/>` +
      `<text x="${lx + 16}" y="${ly}" class="legend">${esc(s.name)}</text>`
    );
  });

  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
    '<style>.label{font-size:12px;fill:#111}.value{font-size:11px;fill:#333}.tick{font-size:11px;fill:#555}' +
      '.legend{font-size:12px;fill:#222}.grid{stroke:#e5e7eb}.whisker{stroke:#111;stroke-width:1;fill:none}' +
      '.title{font-size:15px;font-weight:600;fill:#111}.sub{font-size:11px;fill:#555}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="22" class="title">${esc(title)}</text>`,
    `<text x="12" y="40" class="sub">${esc(subtitle)}</text>`,
    ...legend,
    ...axis,
    ...out,
    '</svg>',
    '',
  ].join('\n');
}

/** The charts the bench writes, by file name. */
export function charts(rows: RowReport[], note: string): Record<string, string> {
  return {
    'throughput.svg': barChart(
      'Throughput, messages/s (higher is better, log scale)',
      note,
      rows.filter((r) => r.chart === 'throughput'),
    ),
    'latency.svg': barChart(
      'Latency, ms (lower is better, log scale)',
      note,
      rows.filter((r) => r.chart === 'latency'),
    ),
  };
}
