/**
 * `groupSend` fan-out: every member is a process-local channel with a receive already
 * waiting (an idle consumer); one round is `groupSend` → every member has its message.
 */
import { crc32 } from 'node:zlib';
import calculateSlot from 'cluster-key-slot';
import { percentileSorted } from '../stats.ts';
import type { BenchHost, ScenarioResult } from '../types.ts';
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

/**
 * `warmupIterations` rounds thrown away first — and with `warmup` (seconds), more until that
 * long has passed — then `iterations` measured; returns the measured times sorted and how many
 * rounds were run in all.
 */
async function rounds(
  sender: BenchLayer,
  members: { layer: BenchLayer; channel: string }[],
  p: { iterations: number; warmupIterations: number; stallSeconds: number; warmup?: number },
): Promise<{ times: number[]; total: number }> {
  const watchdog = new Watchdog(p.stallSeconds * 1000);
  const warmUntil = now() + (p.warmup ?? 0) * 1000;
  let i = 0;
  for (; i < p.warmupIterations || now() < warmUntil; i++) {
    await round(sender, members, i, watchdog);
    watchdog.progress();
  }
  const times: number[] = [];
  for (const end = i + p.iterations; i < end; i++) {
    times.push(await round(sender, members, i, watchdog));
    watchdog.progress();
  }
  watchdog.stop();
  return { times: times.sort((a, b) => a - b), total: i };
}

/** 1,000 members (the `groupSize` knob) in one layer, which also sends. */
export async function groupScenario(
  layer: BenchLayer,
  p: { groupSize: number; iterations: number; warmupIterations: number; stallSeconds: number },
): Promise<ScenarioResult> {
  const members: { layer: BenchLayer; channel: string }[] = [];
  for (let i = 0; i < p.groupSize; i++) members.push({ layer, channel: await layer.newChannel() });
  await inBatches(members, 100, (m) => layer.groupAdd(GROUP, m.channel));
  // Rounds only (no time-based warm-up): channels_redis's side runs the same count.
  const { iterations, warmupIterations, stallSeconds } = p;
  const { times, total } = await rounds(layer, members, {
    iterations,
    warmupIterations,
    stallSeconds,
  });
  return {
    metrics: { p50: percentileSorted(times, 50), p99: percentileSorted(times, 99) },
    info: { rounds: times.length, members: members.length, messages: total * members.length },
  };
}

/** Where a process's queue key lives: its shard, and (on any topology) its cluster slot. */
export interface Placement {
  shards: number;
  shardOf(channel: string): number;
  slotOf(channel: string): number;
}

/** A process-local channel's queue: its non-local part, `…!` (channels_redis). */
const nonLocal = (channel: string): string => channel.slice(0, channel.indexOf('!') + 1);

/**
 * Placement of a process's queue on `hosts`: channels_redis's crc32 of the non-local part over
 * a list of URLs; on a cluster the key's slot (prefix `asgi`, the layers' default), on the
 * master whose even share of the 16,384 slots holds it (the bench's cluster: bench/servers.ts).
 */
export function placementOf(hosts: BenchHost[]): Placement {
  const slotOf = (channel: string): number => calculateSlot(`asgi${nonLocal(channel)}`);
  const [first] = hosts;
  if (typeof first === 'object') {
    const masters = first.cluster.length;
    return {
      shards: masters,
      shardOf: (channel) => Math.floor((slotOf(channel) * masters) / 16384),
      slotOf,
    };
  }
  const shards = hosts.length;
  return {
    shards,
    shardOf: (channel) => Math.floor((crc32(nonLocal(channel)) & 0xfff) / (4096 / shards)),
    slotOf,
  };
}

/**
 * `count` receiving layers (think: server processes; one process's local channels share one
 * key) whose queue keys are on `count` different slots and together on every shard. Layers
 * made and not kept are closed.
 */
async function spreadReceivers(
  make: () => BenchLayer,
  placement: Placement,
  count: number,
): Promise<BenchLayer[]> {
  const receivers: BenchLayer[] = [];
  const slots = new Set<number>();
  const covered = new Set<number>();
  const spare: BenchLayer[] = [];
  for (let tries = 0; receivers.length < count && tries < 50 * count; tries++) {
    const layer = make();
    const channel = await layer.newChannel();
    const shard = placement.shardOf(channel);
    const slot = placement.slotOf(channel);
    // Every shard first; then any new slot, while enough places are left for the missing shards.
    const room = count - receivers.length > placement.shards - covered.size;
    if (!slots.has(slot) && (!covered.has(shard) || room)) {
      slots.add(slot);
      covered.add(shard);
      receivers.push(layer);
    } else spare.push(layer);
  }
  await Promise.all(spare.map((l) => l.close()));
  if (covered.size < placement.shards) {
    await Promise.all(receivers.map((l) => l.close()));
    throw new Error(`receivers on ${covered.size} of ${placement.shards} shards only`);
  }
  return receivers;
}

/** `size` members spread round-robin over `receivers`, added to the group (1,000 in flight). */
async function membersOn(
  receivers: BenchLayer[],
  size: number,
): Promise<{ members: { layer: BenchLayer; channel: string }[]; groupAddMs: number }> {
  const members: { layer: BenchLayer; channel: string }[] = [];
  for (let i = 0; i < size; i++) {
    const layer = receivers[i % receivers.length]!;
    members.push({ layer, channel: await layer.newChannel() });
  }
  const t0 = now();
  await inBatches(members, 1000, (m) => m.layer.groupAdd(GROUP, m.channel));
  return { members, groupAddMs: now() - t0 };
}

/**
 * 100,000 members (the `bigGroupSize` knob) over every shard: one receiving layer per shard,
 * a separate layer sends.
 */
export async function bigGroupScenario(
  make: () => BenchLayer,
  placement: Placement,
  p: { bigGroupSize: number; iterations: number; stallSeconds: number },
): Promise<ScenarioResult> {
  const receivers = await spreadReceivers(make, placement, placement.shards);
  const sender = make();
  try {
    const { members, groupAddMs } = await membersOn(receivers, p.bigGroupSize);
    const { times } = await rounds(sender, members, {
      iterations: Math.min(p.iterations, 3),
      warmupIterations: 0,
      stallSeconds: p.stallSeconds,
    });
    return {
      metrics: { time: percentileSorted(times, 50), groupAddAll: groupAddMs },
      info: {
        members: members.length,
        shardsCovered: placement.shards,
        rounds: times,
        messages: times.length * members.length,
      },
    };
  } finally {
    await Promise.all([sender, ...receivers].map((l) => l.close()));
  }
}

/** Receiving layers of the `*-slots` group scenarios: as many queue keys on as many slots. */
export const SLOT_RECEIVERS = 16;

/**
 * groupSend to `size` members whose queues are on SLOT_RECEIVERS slots covering every shard
 * (on a cluster: every master, one script call per member queue, written per node); a
 * separate layer sends. Reports p50/p99 of groupSend → all received, and members delivered
 * per second at the p50. With `warmup` (seconds) the warm-up lasts at least that long, as the
 * streaming rows' does: the cluster's path takes about 25 rounds to reach its steady speed
 * (with 3 warm-up rounds the 1,000-member row measured 0.70× of 3 hosts; 300 rounds 1.0×).
 */
export async function slotsGroupScenario(
  make: () => BenchLayer,
  placement: Placement,
  size: number,
  p: { iterations: number; warmupIterations: number; stallSeconds: number; warmup?: number },
): Promise<ScenarioResult> {
  const receivers = await spreadReceivers(make, placement, SLOT_RECEIVERS);
  const sender = make();
  try {
    const { members, groupAddMs } = await membersOn(receivers, size);
    const { times, total } = await rounds(sender, members, p);
    const p50 = percentileSorted(times, 50);
    return {
      metrics: {
        p50,
        p99: percentileSorted(times, 99),
        membersPerSec: (members.length / p50) * 1000,
        groupAddAll: groupAddMs,
      },
      info: {
        members: members.length,
        receivers: receivers.length,
        shards: placement.shards,
        rounds: times,
        messages: total * members.length,
      },
    };
  } finally {
    await Promise.all([sender, ...receivers].map((l) => l.close()));
  }
}
