/**
 * `chanlayer top`: a snapshot every `intervalMs`, drawn on the terminal's alternate screen:
 * shard health (PING), the deepest queues and the largest groups with estimated rates
 * (rates.ts), dead processes. Ctrl-C (SIGINT) or SIGTERM: the connections close, the cursor and
 * the screen are restored, and the command exits 0 once nothing is left open (no forced exit).
 * `--once`: one frame, no screen control.
 */
import { duration, fit, processLines, shardLines, table } from './render.ts';
import { openShards } from './connect.ts';
import { snapshotOptions } from './inspect.ts';
import type { CliOptions } from './args.ts';
import { groupRates, queueRates, type Rate } from './rates.ts';
import { takeSnapshot, type Snapshot } from './snapshot.ts';

const ALT_SCREEN = '\x1b[?1049h';
const MAIN_SCREEN = '\x1b[?1049l';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const HOME_CLEAR = '\x1b[H\x1b[2J';

const QUEUE_ROWS = 8;
const GROUP_ROWS = 6;
const DEAD_ROWS = 4;

function perSecond(rate: number | undefined): string {
  if (rate === undefined) return '-';
  return rate >= 10_000 ? `${(rate / 1000).toFixed(0)}k` : rate.toFixed(rate < 10 ? 1 : 0);
}

export function renderTop(
  snapshot: Snapshot,
  rates: { queues: Map<string, Rate>; groups: Map<string, Rate> } | undefined,
  opts: Pick<CliOptions, 'prefix' | 'intervalMs'>,
  width: number,
): string {
  const clock = new Date(snapshot.at).toISOString().slice(11, 19);
  const head = fit(
    `chanlayer top · ${opts.prefix} · ${snapshot.shards.length} shard(s) · ${clock} UTC · ` +
      `every ${opts.intervalMs / 1000}s · Ctrl-C quits`,
    width,
  );
  const rateColumns = [
    { title: 'IN/s', width: 6 },
    { title: 'OUT/s', width: 6 },
  ];
  const queues = table(
    [
      {
        title: `QUEUES (deepest ${Math.min(QUEUE_ROWS, snapshot.queues.length)} of ${snapshot.queues.length})`,
      },
      { title: 'DEPTH', width: 7 },
      { title: 'OLDEST', width: 7 },
      ...rateColumns,
    ],
    snapshot.queues.slice(0, QUEUE_ROWS).map((q) => {
      const r = rates?.queues.get(q.channel);
      return [
        q.channel,
        String(q.depth),
        duration(q.oldestAgeMs),
        perSecond(r?.in),
        perSecond(r?.out),
      ];
    }),
    width,
  );
  const groups = table(
    [
      {
        title: `GROUPS (largest ${Math.min(GROUP_ROWS, snapshot.groups.length)} of ${snapshot.groups.length})`,
      },
      { title: 'MEMBERS', width: 7 },
      ...rateColumns,
    ],
    snapshot.groups.slice(0, GROUP_ROWS).map((g) => {
      const r = rates?.groups.get(g.name);
      return [g.name, String(g.members), perSecond(r?.in), perSecond(r?.out)];
    }),
    width,
  );
  const dead = snapshot.processes.filter((p) => !p.alive);
  const processes = processLines(
    snapshot,
    `DEAD PROCESSES (${dead.length} of ${snapshot.processes.length})`,
    dead.slice(0, DEAD_ROWS),
    width,
  );
  const note = fit(
    'rates are lower bounds: depth changes + entries newer than the last frame',
    width,
  );
  return [
    head,
    ...shardLines(snapshot, width),
    '',
    ...queues,
    '',
    ...groups,
    '',
    ...processes,
    note,
  ].join('\n');
}

export async function top(opts: CliOptions, width: () => number): Promise<number> {
  const shards = await openShards(opts);
  const screen = !opts.once;
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    stopping = true;
    clearTimeout(timer);
    wake?.();
    // Commands in flight are rejected at once: the frame being read is abandoned.
    for (const shard of shards) shard.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (screen) process.stdout.write(ALT_SCREEN + HIDE_CURSOR);
  let status = 0;
  try {
    let prev: Snapshot | undefined;
    while (!stopping) {
      const since = new Map([...(prev?.samples ?? [])].map(([id, s]) => [id, s.newest]));
      const snapshot = await takeSnapshot(shards, {
        ...snapshotOptions(opts, shards),
        since,
        withMembers: true,
      });
      if (stopping) break;
      let rates;
      if (prev) {
        const queues = queueRates(prev, snapshot);
        rates = { queues, groups: groupRates(snapshot, queues) };
      }
      const frame = renderTop(snapshot, rates, opts, width());
      process.stdout.write(screen ? `${HOME_CLEAR}${frame}` : `${frame}\n`);
      prev = snapshot;
      if (opts.once) {
        status = snapshot.shards.every((s) => s.ok) ? 0 : 1;
        break;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, opts.intervalMs);
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (screen) process.stdout.write(SHOW_CURSOR + MAIN_SCREEN);
    for (const shard of shards) shard.close();
  }
  return status;
}
