/**
 * Text output of the `chanlayer` command: tables that fit the terminal's width (80 columns when
 * it is not a terminal). The first column takes what the others leave and is cut with '…';
 * no line is ever wider than `width`.
 */
import type { Snapshot } from './snapshot.ts';

export interface Column {
  title: string;
  /** Fixed width; the first column takes the rest. */
  width?: number;
  align?: 'left' | 'right';
}

/** `text` cut to `width` characters ('…' marks the cut). */
export function fit(text: string, width: number): string {
  if (width <= 0) return '';
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

function pad(text: string, width: number, align: 'left' | 'right'): string {
  const cut = fit(text, width);
  return align === 'right' ? cut.padStart(width) : cut.padEnd(width);
}

/** A title line and one line per row; cells separated by a space. */
export function table(columns: Column[], rows: string[][], width: number): string[] {
  const fixed = columns.slice(1).reduce((sum, c) => sum + (c.width ?? 0) + 1, 0);
  const widths = columns.map((c, i) => (i === 0 ? Math.max(8, width - fixed) : c.width!));
  const line = (cells: string[]): string =>
    fit(
      cells
        .map((cell, i) => pad(cell, widths[i]!, columns[i]!.align ?? (i === 0 ? 'left' : 'right')))
        .join(' ')
        .trimEnd(),
      width,
    );
  return [line(columns.map((c) => c.title)), ...rows.map(line)];
}

/** A duration, short: 850ms, 12.3s, 5m03s, 2h10m, 3d04h. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const two = (n: number): string => String(Math.floor(n)).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${two((s % 86_400) / 3600)}h`;
}

export function shardLines(snapshot: Snapshot, width: number): string[] {
  return table(
    [
      { title: 'SHARD' },
      { title: 'STATE', width: 5 },
      { title: 'PING', width: 8 },
      { title: 'KEYS', width: 8 },
    ],
    snapshot.shards.map((s) => [
      `#${s.shard} ${s.id}`,
      s.ok ? 'ok' : 'DOWN',
      s.latencyMs === undefined ? '-' : `${s.latencyMs.toFixed(2)}ms`,
      `${s.scanned}${s.truncated ? '+' : ''}`,
    ]),
    width,
  ).concat(
    snapshot.shards
      .filter((s) => s.error !== undefined)
      .map((s) => fit(`  #${s.shard}: ${s.error}`, width)),
  );
}

export function processLines(
  snapshot: Snapshot,
  title: string,
  rows: Snapshot['processes'],
  width: number,
): string[] {
  return table(
    [{ title }, { title: 'STATE', width: 5 }, { title: 'LAST HEARTBEAT', width: 14 }],
    rows.map((p) => [
      p.client,
      p.alive ? 'alive' : 'DEAD',
      `${duration(snapshot.at - p.lastSeenMs)} ago`,
    ]),
    width,
  );
}

/** `inspect`'s text output: every shard, group, queue and process, biggest first. */
export function renderInspect(snapshot: Snapshot, width: number): string {
  const groups = table(
    [{ title: `GROUPS (${snapshot.groups.length})` }, { title: 'MEMBERS', width: 8 }],
    snapshot.groups.map((g) => [g.name, String(g.members)]),
    width,
  );
  const queues = table(
    [
      { title: `QUEUES (${snapshot.queues.length})` },
      { title: 'DEPTH', width: 7 },
      { title: 'OLDEST', width: 8 },
    ],
    snapshot.queues.map((q) => [q.channel, String(q.depth), duration(q.oldestAgeMs)]),
    width,
  );
  const dead = snapshot.processes.filter((p) => !p.alive).length;
  const processes = processLines(
    snapshot,
    `PROCESSES (${snapshot.processes.length}, ${dead} dead)`,
    snapshot.processes,
    width,
  );
  return [...shardLines(snapshot, width), '', ...groups, '', ...queues, '', ...processes, ''].join(
    '\n',
  );
}
