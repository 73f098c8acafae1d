/**
 * One typed function per Lua script of `lib/scripts/`: each builds the script's KEYS and ARGV
 * through its spec (the header of the `.lua` file, as data: test/scripts.test.ts checks that the
 * two agree) and turns the script's reply codes into typed results or errors.
 */
import type { Redis } from 'ioredis';
import { NotAChannelQueue } from '../errors.ts';
import { runScript, runScriptSeldom, type ScriptSpec } from './scripts.ts';

/** The spec as given, with its slot names as literal types. */
function script<F extends string = never, I extends string = never>(
  spec: ScriptSpec<F, I>,
): ScriptSpec<F, I> {
  return spec;
}

/** Reply code of send.lua, send_many.lua and group_send.lua for a key that is not a sorted set. */
const FOREIGN_KEY = -1;

export const SEND = script({
  name: 'send',
  keys: { head: ['queue'] },
  argv: { head: ['score', 'member', 'capacity', 'expiredBefore', 'ttlMs'] },
});

export interface SendArgs {
  /** The channel's queue key. */
  queue: string;
  /** Send time, float Unix seconds. */
  score: number;
  member: Buffer;
  capacity: number;
  /** Members scored at or below this are dropped first. */
  expiredBefore: number;
  /** Key TTL in milliseconds. */
  ttlMs: number;
}

/**
 * Per key of a send: how many of its messages were added (the first ones: the others found the
 * queue full), or NotAChannelQueue when the key is not a sorted set (none was written). Given as
 * a value, not a rejection: the caller decides whose sends it fails.
 */
export type KeySendOutcome = number | NotAChannelQueue;

/** Adds one message: 1 when added, 0 when the queue is full. */
export function sendScript(client: Redis, args: SendArgs): Promise<KeySendOutcome> {
  return runScript(client, SEND, args).then((reply) =>
    reply === FOREIGN_KEY ? new NotAChannelQueue(args.queue, 'the message') : (reply as number),
  );
}

export const SEND_MANY = script({
  name: 'send_many',
  keys: { rows: ['queue'] },
  argv: { head: ['ttlMs'], rows: ['capacity', 'expiredBefore', 'packed'] },
});

/** Bytes a message takes in send_many.lua's packed argument besides its member. */
export const PACKED_HEADER_BYTES = 12;

/** One key's messages for send_many.lua, in send order. */
export interface SendManyKey {
  queue: string;
  capacity: number;
  /** The first message's cutoff: the key is trimmed once per call. */
  expiredBefore: number;
  scores: number[];
  members: Buffer[];
  /** Packed size: PACKED_HEADER_BYTES + member length, summed over the messages. */
  bytes: number;
}

/** Adds each key's messages in order, each with its own capacity check. */
export function sendManyScript(
  client: Redis,
  ttlMs: number,
  keys: readonly SendManyKey[],
): Promise<KeySendOutcome[]> {
  const items = keys.map((key) => ({
    queue: key.queue,
    capacity: key.capacity,
    expiredBefore: key.expiredBefore,
    packed: pack(key),
  }));
  return runScript(client, SEND_MANY, { ttlMs }, items).then((reply) =>
    (reply as number[]).map((added, j) =>
      added === FOREIGN_KEY ? new NotAChannelQueue(keys[j]!.queue, 'the message') : added,
    ),
  );
}

/** A key's messages as one string: per message its score, member length and member. */
function pack(key: SendManyKey): Buffer {
  const packed = Buffer.allocUnsafe(key.bytes);
  let offset = 0;
  key.members.forEach((member, i) => {
    offset = packed.writeDoubleBE(key.scores[i]!, offset);
    offset = packed.writeUInt32BE(member.length, offset);
    offset += member.copy(packed, offset);
  });
  return packed;
}

export const GROUP_SEND = script({
  name: 'group_send',
  keys: { rows: ['queue'] },
  argv: { head: ['score', 'expiredBefore', 'ttlMs'], columns: ['member', 'capacity'] },
});

export interface GroupSendArgs {
  /** Send time, float Unix seconds. */
  score: number;
  expiredBefore: number;
  ttlMs: number;
}

export interface GroupSendQueue {
  queue: string;
  /** The message for this key (its channel field lists the group's channels there). */
  member: Buffer;
  capacity: number;
}

/** Per queue: 'added', 'full' (skipped) or NotAChannelQueue (skipped: not a sorted set). */
export type GroupSendOutcome = 'added' | 'full' | NotAChannelQueue;

/** Adds one group message to each queue of one shard. */
export function groupSendScript(
  client: Redis,
  args: GroupSendArgs,
  queues: readonly GroupSendQueue[],
): Promise<GroupSendOutcome[]> {
  return runScript(client, GROUP_SEND, args, queues).then((reply) => {
    // i: KEYS[i] was full; -i: it is not a sorted set.
    const skipped = new Set(reply as number[]);
    return queues.map((q, i) => {
      if (skipped.has(-(i + 1))) return new NotAChannelQueue(q.queue, 'the group message');
      return skipped.has(i + 1) ? 'full' : 'added';
    });
  });
}

export const GROUP_ADD = script({
  name: 'group_add',
  keys: { head: ['group'] },
  argv: { head: ['score', 'channel', 'ttlMs'] },
});

export interface GroupAddArgs {
  /** The group's key. */
  group: string;
  /** Time of the add, float Unix seconds. */
  score: number;
  channel: string;
  /** Group key TTL in milliseconds. */
  ttlMs: number;
}

/**
 * Adds or refreshes a membership: true when the channel is a new member. A group key that is
 * not a sorted set rejects with Redis's WRONGTYPE error (nothing written).
 */
export function groupAddScript(client: Redis, args: GroupAddArgs): Promise<boolean> {
  return runScript(client, GROUP_ADD, args).then((reply) => reply === 1);
}

export const GIVE_BACK = script({
  name: 'give_back',
  keys: { head: ['queue'] },
  argv: { head: ['ttlMs'], rows: ['score', 'member'] },
});

/** Puts `messages` back into `queue` unchanged; resolves how many. */
export function giveBackScript(
  client: Redis,
  args: { queue: string; ttlMs: number },
  messages: ReadonlyArray<{ score: number; member: Buffer }>,
): Promise<number> {
  return runScript(client, GIVE_BACK, args, messages) as Promise<number>;
}

export const DRAIN = script({
  name: 'drain',
  keys: { rows: ['queue'] },
  argv: { rows: ['count'] },
  buffers: true,
});

/**
 * What one key of a drain gave: `index` is its place in the keys given; `popped` holds its
 * members, lowest score first, as member, score, member, score, … from position 1 on (the
 * reply's own array, not copied); or the type of a key that is not a sorted set (skipped).
 */
export type DrainEntry = { index: number; popped: Buffer[] } | { index: number; type: string };

/** Pops at most `counts[i]` members from each `queues[i]`; keys that gave nothing are left out. */
export function drainScript(
  client: Redis,
  queues: readonly string[],
  counts: readonly number[],
): Promise<DrainEntry[]> {
  const items = queues.map((queue, i) => ({ queue, count: counts[i]! }));
  return runScript(client, DRAIN, {}, items).then((reply) =>
    (reply as Array<[number, ...Buffer[]]>).map((entry) => {
      const i = entry[0];
      return i < 0
        ? { index: -i - 1, type: String(entry[1]) }
        : { index: i - 1, popped: entry as unknown as Buffer[] };
    }),
  );
}

export const RESTORE_INFLIGHT = script({
  name: 'restore_inflight',
  keys: { head: ['queue', 'inflight'] },
  argv: { head: ['ttlMs'] },
});

/**
 * Puts back what a channels_redis receiver left in `queue`'s `$inflight` backup; resolves how
 * many messages. `ttlMs`: the queue's TTL when it has none.
 */
export function restoreInflightScript(
  client: Redis,
  queue: string,
  ttlMs: number,
): Promise<number> {
  return runScript(client, RESTORE_INFLIGHT, {
    queue,
    inflight: `${queue}$inflight`,
    ttlMs,
  }) as Promise<number>;
}

export const WAKE = script({
  name: 'wake',
  keys: { head: ['wakeKey'] },
  argv: { head: ['ttlMs'] },
});

/** Adds the wake member to `wakeKey` (expiring in `ttlMs`). */
export function wakeScript(client: Redis, wakeKey: string, ttlMs: number): Promise<void> {
  return runScript(client, WAKE, { wakeKey, ttlMs }).then(() => undefined);
}

export const HEARTBEAT = script({
  name: 'heartbeat',
  keys: { head: ['registry'] },
  argv: { head: ['client', 'deadAfterMs', 'trimAfterMs'] },
});

export interface HeartbeatArgs {
  /** The liveness registry's key. */
  registry: string;
  /** This process's client prefix. */
  client: string;
  deadAfterMs: number;
  /** A process silent this long is forgotten; also the registry's TTL. */
  trimAfterMs: number;
}

export interface HeartbeatVerdict {
  /** This process had been silent for deadAfterMs: its memberships may have been removed. */
  revived: boolean;
  /** Server time (ms) until which no verdict is given (outage guard), 0 when none. */
  graceUntil: number;
  /** Client prefixes of the registered processes that are dead. */
  dead: string[];
}

/** Registers this process (server time) and returns which registered processes are dead. */
export function heartbeatScript(client: Redis, args: HeartbeatArgs): Promise<HeartbeatVerdict> {
  return runScriptSeldom(client, HEARTBEAT, args).then((reply) => {
    const [revived, graceUntil, ...dead] = reply as [number, number, ...string[]];
    return { revived: revived === 1, graceUntil, dead };
  });
}

/** Every script, for the header check. */
export const SCRIPTS: readonly ScriptSpec[] = [
  SEND,
  SEND_MANY,
  GROUP_SEND,
  GROUP_ADD,
  GIVE_BACK,
  DRAIN,
  RESTORE_INFLIGHT,
  WAKE,
  HEARTBEAT,
];
