/**
 * One read-only look at every shard: what `inspect` prints and `top` refreshes.
 *
 * Keys are found with SCAN (never KEYS), at most `limit` per shard, and classified by the wire
 * format (docs/wire-protocol.md), so a Redis shared with Django reads the same:
 * - `<prefix>:group:<g>` sorted sets are groups; live members have a score (time of their last
 *   groupAdd) newer than groupExpiry, and are not channels of a dead process;
 * - `<prefix><name>` sorted sets with a channel's non-local name (`x` or `x.<client>!`) are
 *   queues; the lowest score is the oldest message's send time (float Unix seconds);
 * - `…$inflight` (a receiver's backup of what it popped), other `<prefix>:…` keys (the registry,
 *   readers' wake keys) and keys of other types are skipped.
 * Processes come from the liveness registry `<prefix>:processes` (notes: liveness design), on
 * the shard the placement gives `:processes` (connect.ts); dead = last heartbeat older than deadAfterMs by
 * that shard's clock, unless its `:grace` member says verdicts are suspended.
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { errorMessage } from '../errors.ts';
import { prefixPattern } from '../redis/scan.ts';
import type { Shard } from '../redis/shard.ts';

export interface GroupRow {
  name: string;
  members: number;
}
export interface QueueRow {
  channel: string;
  depth: number;
  oldestAgeMs: number;
}
export interface ProcessRow {
  client: string;
  alive: boolean;
  /** Unix time (ms, the registry shard's clock) of its last heartbeat. */
  lastSeenMs: number;
}
export interface ShardRow {
  shard: number;
  id: string;
  ok: boolean;
  latencyMs?: number;
  error?: string;
  /** Keys looked at, and whether SCAN stopped at `limit` before the end. */
  scanned: number;
  truncated: boolean;
}

/** A queue key on one shard, as top needs it for rates. */
export interface QueueSample {
  channel: string;
  depth: number;
  /** Score of the newest entry (send time, s). */
  newest: number;
  /** Entries newer than the `since` score given for this key (undefined: none was given). */
  arrived: number | undefined;
}

export interface Snapshot {
  /** Server time (ms) of the first shard that answered, else the local clock. */
  at: number;
  groups: GroupRow[];
  queues: QueueRow[];
  processes: ProcessRow[];
  shards: ShardRow[];
  /** `shard key` → sample (a queue may be on several shards: channels_redis #221). */
  samples: Map<string, QueueSample>;
  /** Group → its live member channels (at most `limit`), for per-group rates. */
  members: Map<string, string[]>;
}

export interface SnapshotOptions {
  prefix: string;
  groupExpiryMs: number;
  deadAfterMs: number;
  limit: number;
  /** Shards that may hold the registry (connect.ts registryShards). */
  registryShards: readonly number[];
  /** `shard key` → newest score seen last time (top), to count what arrived since. */
  since?: ReadonlyMap<string, number>;
  /** Read each group's member names too (top). */
  withMembers?: boolean;
}

const SCAN_COUNT = 1000;
/** Keys per pipeline. */
const CHUNK = 500;
/** A channel's non-local name, as a queue key's suffix: `x` or `x!`. */
const QUEUE_NAME = /^[a-zA-Z\d\-_.]+!?$/;
const INFLIGHT = '$inflight';
const GRACE = ':grace';

/** The process (client prefix) a channel belongs to: between the last '.' and the first '!'. */
export function ownerOf(channel: string): string | undefined {
  const bang = channel.indexOf('!');
  if (bang === -1) return undefined;
  return channel.slice(channel.lastIndexOf('.', bang) + 1, bang);
}

/** Server time in ms. */
async function serverTime(client: Redis): Promise<number> {
  const [s, us] = await client.time();
  return Number(s) * 1000 + Number(us) / 1000;
}

type Command = [string, ...Array<string | number>];

/**
 * `commands(key)` for every key, pipelined CHUNK keys at a time (a pipeline of 10,000s of
 * commands held ~100 MB of replies at once); each key's replies, throwing the first error.
 */
async function perKey(
  client: Redis,
  keys: readonly string[],
  commands: (key: string) => Command[],
): Promise<unknown[][]> {
  const out: unknown[][] = [];
  for (let start = 0; start < keys.length; start += CHUNK) {
    const lists = keys.slice(start, start + CHUNK).map(commands);
    const replies = (await client.pipeline(lists.flat()).exec()) ?? [];
    let at = 0;
    for (const list of lists) {
      out.push(
        replies.slice(at, (at += list.length)).map(([err, value]) => {
          if (err) throw err;
          return value;
        }),
      );
    }
  }
  return out;
}

/** Keys with the prefix, at most `limit`, by type: the sorted sets only. */
async function scanSortedSets(client: Redis, prefix: string, limit: number) {
  const zsets: string[] = [];
  let scanned = 0;
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(
      cursor,
      'MATCH',
      prefixPattern(prefix),
      'COUNT',
      SCAN_COUNT,
    );
    cursor = next;
    const batch = keys.slice(0, limit - scanned);
    scanned += batch.length;
    const types = await perKey(client, batch, (key) => [['type', key]]);
    batch.forEach((key, i) => {
      if (types[i]![0] === 'zset') zsets.push(key);
    });
    if (scanned >= limit)
      return { zsets, scanned, truncated: cursor !== '0' || batch.length < keys.length };
  } while (cursor !== '0');
  return { zsets, scanned, truncated: false };
}

/** The registry: every registered process with its verdict. */
async function readProcesses(client: Redis, opts: SnapshotOptions): Promise<ProcessRow[]> {
  const now = await serverTime(client);
  const flat = await client.zrange(`${opts.prefix}:processes`, 0, -1, 'WITHSCORES');
  let graceUntil = -Infinity;
  const rows: ProcessRow[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const member = flat[i]!;
    const score = Number(flat[i + 1]);
    if (member === GRACE) graceUntil = score;
    if (member.startsWith(':')) continue;
    rows.push({ client: member, alive: true, lastSeenMs: score });
  }
  // While the registry is in its outage grace period nobody is declared dead (liveness design).
  for (const row of rows) row.alive = now <= graceUntil || now - row.lastSeenMs <= opts.deadAfterMs;
  return rows;
}

interface ShardRead {
  row: ShardRow;
  now: number | undefined;
  groups: Map<string, number>;
  queues: QueueRow[];
  samples: Array<[string, QueueSample]>;
  members: Map<string, string[]>;
}

async function readShard(
  shard: Shard,
  opts: SnapshotOptions,
  dead: ReadonlySet<string>,
): Promise<ShardRead> {
  const out: ShardRead = {
    row: { shard: shard.index, id: shard.spec.id, ok: false, scanned: 0, truncated: false },
    now: undefined,
    groups: new Map(),
    queues: [],
    samples: [],
    members: new Map(),
  };
  try {
    await shard.whenReady();
    const client = shard.client;
    const started = performance.now();
    await client.ping();
    out.row.latencyMs = performance.now() - started;
    const now = await serverTime(client);
    out.now = now;
    const { zsets, scanned, truncated } = await scanSortedSets(client, opts.prefix, opts.limit);
    Object.assign(out.row, { scanned, truncated });

    const groupPrefix = `${opts.prefix}:group:`;
    const groupKeys = zsets.filter((k) => k.startsWith(groupPrefix));
    const queueKeys = zsets.filter((k) => {
      const name = k.slice(opts.prefix.length);
      return !name.endsWith(INFLIGHT) && QUEUE_NAME.test(name);
    });

    // Queues: depth, oldest and newest score, and (top) how many are newer than last time.
    const queueReplies = await perKey(client, queueKeys, (key) => {
      const since = opts.since?.get(`${shard.index} ${key}`);
      const commands: Command[] = [
        ['zcard', key],
        ['zrange', key, 0, 0, 'WITHSCORES'],
        ['zrange', key, -1, -1, 'WITHSCORES'],
      ];
      if (since !== undefined) commands.push(['zcount', key, `(${since}`, '+inf']);
      return commands;
    });
    queueKeys.forEach((key, i) => {
      const [depth, oldest, newest, arrived] = queueReplies[i] as [
        number,
        string[],
        string[],
        number | undefined,
      ];
      if (depth === 0 || oldest.length < 2) return; // emptied between SCAN and now
      const channel = key.slice(opts.prefix.length);
      out.queues.push({
        channel,
        depth,
        oldestAgeMs: Math.max(0, Math.round(now - Number(oldest[1]) * 1000)),
      });
      out.samples.push([
        `${shard.index} ${key}`,
        {
          channel,
          depth,
          // (Emptied between the two reads: the oldest is the newest known.)
          newest: Number((newest.length === 2 ? newest : oldest)[1]),
          arrived,
        },
      ]);
    });

    // Groups: live memberships (score > now − groupExpiry), minus channels of dead processes.
    const cutoff = `(${(now - opts.groupExpiryMs) / 1000}`;
    const needNames = opts.withMembers === true || dead.size > 0;
    const groupReplies = await perKey(client, groupKeys, (key) => {
      const commands: Command[] = [['zcount', key, cutoff, '+inf']];
      if (needNames) commands.push(['zrangebyscore', key, cutoff, '+inf', 'LIMIT', 0, opts.limit]);
      return commands;
    });
    groupKeys.forEach((key, i) => {
      const [live, names = []] = groupReplies[i] as [number, string[] | undefined];
      const alive = names.filter((c) => !dead.has(ownerOf(c) ?? ''));
      const name = key.slice(groupPrefix.length);
      out.groups.set(name, live - (names.length - alive.length));
      if (opts.withMembers) out.members.set(name, alive);
    });
    out.row.ok = true;
  } catch (err) {
    out.row.error = errorMessage(shard.explain(err));
  }
  return out;
}

/** Reads every shard (in parallel); an unreachable one is a row with `ok: false` and its error. */
export async function takeSnapshot(shards: Shard[], opts: SnapshotOptions): Promise<Snapshot> {
  const registryErrors = new Map<number, string>();
  const processes = (
    await Promise.all(
      opts.registryShards.map(async (index) => {
        const shard = shards[index]!;
        try {
          await shard.whenReady();
          return await readProcesses(shard.client, opts);
        } catch (err) {
          registryErrors.set(index, errorMessage(shard.explain(err)));
          return [];
        }
      }),
    )
  ).flat();
  const dead = new Set(processes.filter((p) => !p.alive).map((p) => p.client));
  const reads = await Promise.all(shards.map((shard) => readShard(shard, opts, dead)));
  for (const [index, error] of registryErrors) reads[index]!.row.error ??= error;

  // A name can be on several shards: a queue by channels_redis's #221 placement, a group by a
  // change of hosts. One row each, summed; a queue's oldest message is the oldest anywhere.
  const groups = new Map<string, number>();
  const queues = new Map<string, QueueRow>();
  const members = new Map<string, string[]>();
  for (const read of reads) {
    for (const [name, n] of read.groups) groups.set(name, (groups.get(name) ?? 0) + n);
    for (const [name, list] of read.members)
      members.set(name, [...(members.get(name) ?? []), ...list]);
    for (const q of read.queues) {
      const seen = queues.get(q.channel);
      if (!seen) queues.set(q.channel, { ...q });
      else {
        seen.depth += q.depth;
        seen.oldestAgeMs = Math.max(seen.oldestAgeMs, q.oldestAgeMs);
      }
    }
  }
  return {
    at: reads.find((r) => r.now !== undefined)?.now ?? Date.now(),
    groups: [...groups]
      .map(([name, n]) => ({ name, members: n }))
      .sort((a, b) => b.members - a.members || a.name.localeCompare(b.name)),
    queues: [...queues.values()].sort(
      (a, b) => b.depth - a.depth || a.channel.localeCompare(b.channel),
    ),
    processes: processes.sort(
      (a, b) => Number(a.alive) - Number(b.alive) || b.lastSeenMs - a.lastSeenMs,
    ),
    shards: reads.map((r) => r.row),
    samples: new Map(reads.flatMap((r) => r.samples)),
    members,
  };
}
