/**
 * `groupSend` fan-out: every member is a process-local channel with a receive already
 * waiting (an idle consumer); one round is `groupSend` → every member has its message.
 */
import { crc32 } from 'node:zlib';
import { percentileSorted } from '../stats.ts';
import type { ScenarioResult } from '../types.ts';
import { Watchdog, benchMessage, inBatches, now, sleep, type BenchLayer } from './common.ts';

const GROUP = 'bench.group';

/** Time of one round: receives are posted first and given a moment to settle, then timed. */
async function round(
  sender: BenchLayer,
  members: { layer: BenchLayer; channel: string }[],
  i: number,
  watchdog: Watchdog,
): Promise<number> {
  const pending = members.map((m) => m.layer.receive(m.channel));
  await sleep(20);
  const t0 = now();
  await sender.groupSend(GROUP, benchMessage(i));
  await watchdog.race(Promise.all(pending));
  return now() - t0;
}

async function rounds(
  sender: BenchLayer,
  members: { layer: BenchLayer; channel: string }[],
  p: { iterations: number; warmupIterations: number; stallSeconds: number },
): Promise<number[]> {
  const watchdog = new Watchdog(p.stallSeconds * 1000);
  const times: number[] = [];
  for (let i = 0; i < p.warmupIterations + p.iterations; i++) {
    const t = await round(sender, members, i, watchdog);
    watchdog.progress();
    if (i >= p.warmupIterations) times.push(t);
  }
  watchdog.stop();
  return times.sort((a, b) => a - b);
}

/** 1,000 members (the `groupSize` knob) in one layer, which also sends. */
export async function groupScenario(
  layer: BenchLayer,
  p: { groupSize: number; iterations: number; warmupIterations: number; stallSeconds: number },
): Promise<ScenarioResult> {
  const members: { layer: BenchLayer; channel: string }[] = [];
  for (let i = 0; i < p.groupSize; i++) members.push({ layer, channel: await layer.newChannel() });
  await inBatches(members, 100, (m) => layer.groupAdd(GROUP, m.channel));
  const times = await rounds(layer, members, p);
  return {
    metrics: { p50: percentileSorted(times, 50), p99: percentileSorted(times, 99) },
    info: {
      rounds: times.length,
      members: members.length,
      messages: (p.warmupIterations + p.iterations) * members.length,
    },
  };
}

/** channels_redis's placement of a process-local channel: crc32 of its non-local part. */
function shardOf(channel: string, shards: number): number {
  const nonLocal = channel.slice(0, channel.indexOf('!') + 1);
  return Math.floor((crc32(nonLocal) & 0xfff) / (4096 / shards));
}

/**
 * 100,000 members (the `bigGroupSize` knob) over every shard. One process's local channels
 * all share one key, so members are split over several receiving layers (think: server
 * processes) chosen so that their keys land on every shard; a separate layer sends.
 */
export async function bigGroupScenario(
  make: () => BenchLayer,
  shards: number,
  p: { bigGroupSize: number; iterations: number; stallSeconds: number },
): Promise<ScenarioResult> {
  const receivers: BenchLayer[] = [];
  const covered = new Set<number>();
  const spare: BenchLayer[] = [];
  for (let tries = 0; covered.size < shards && tries < 50; tries++) {
    const layer = make();
    const shard = shardOf(await layer.newChannel(), shards);
    if (covered.has(shard)) spare.push(layer);
    else {
      covered.add(shard);
      receivers.push(layer);
    }
  }
  await Promise.all(spare.map((l) => l.close()));
  const sender = make();
  try {
    const members: { layer: BenchLayer; channel: string }[] = [];
    for (let i = 0; i < p.bigGroupSize; i++) {
      const layer = receivers[i % receivers.length]!;
      members.push({ layer, channel: await layer.newChannel() });
    }
    const t0 = now();
    await inBatches(members, 1000, (m) => m.layer.groupAdd(GROUP, m.channel));
    const setupMs = now() - t0;
    const times = await rounds(sender, members, {
      iterations: Math.min(p.iterations, 3),
      warmupIterations: 0,
      stallSeconds: p.stallSeconds,
    });
    return {
      metrics: { time: percentileSorted(times, 50), groupAddAll: setupMs },
      info: {
        members: members.length,
        shardsCovered: covered.size,
        rounds: times,
        messages: times.length * members.length,
      },
    };
  } finally {
    await Promise.all([sender, ...receivers].map((l) => l.close()));
  }
}
