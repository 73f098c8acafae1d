/**
 * RedisChannelLayer: channels_redis `core`-compatible storage (docs/wire-protocol.md) on one or many Redis
 * hosts, without channels_redis's defects:
 *
 * - every queue write is one Lua round trip (trim, capacity check, add, expire: never over capacity,
 *   upstream #229), group sends run per shard on that shard's client, in parallel, chunked;
 * - process-specific channels are placed by their non-local name everywhere (upstream #221) and
 *   read on every shard, so a channels_redis sender's full-name placement is found too;
 * - one reader loop per layer listens on all shards at once (no 5 s per-shard round-robin) and
 *   fans messages out to local mailboxes, where an aborted receive can neither lose a message
 *   nor get one (upstream #366, #163, #151);
 * - flush uses SCAN + UNLINK, never KEYS (#307); the blocking read timeout always exceeds the
 *   block (#422); a down shard fails a command in bounded time instead of hanging.
 */
import { Command, type Redis } from 'ioredis';
import type { HostEntry, LayerOptions } from '../config.ts';
import {
  ChannelFull,
  errorMessage,
  LayerClosed,
  NotAChannelQueue,
  NotAGroup,
  UnreadablePayload,
} from '../errors.ts';
import { Mailboxes } from '../mailboxes.ts';
import {
  assertChannelName,
  assertGroupName,
  assertOwnChannel,
  isProcessLocal,
  newProcessChannel,
  nonLocalName,
  uuidHex,
} from '../names.ts';
import { parseHost } from '../redis/hosts.ts';
import { crc32Placement, ringPlacement, type Placement } from '../redis/placement.ts';
import { DeletedChannels, QueuePurge } from '../redis/deleted-channels.ts';
import { writeDirect } from '../redis/direct.ts';
import { Reader } from '../redis/reader.ts';
import { prefixPattern } from '../redis/scan.ts';
import { SendBatcher } from '../redis/sends.ts';
import {
  GROUP_SEND,
  giveBackScript,
  groupAddScript,
  groupSendScript,
  SEND,
  SEND_MANY,
} from '../redis/script-calls.ts';
import { scriptCommand } from '../redis/scripts.ts';
import { Shard } from '../redis/shard.ts';
import { wakeKey } from '../redis/wake.ts';
import { copier } from '../serde/clone.ts';
import { assertMessage, CHANNEL_FIELD } from '../serde/codec.ts';
import type { ChannelLayer, Message, ReceiveOptions } from '../types.ts';
import { BaseLayer, type MasterChange } from './base.ts';
import { groupQueues } from './group-queues.ts';

export type RedisLayerOptions = LayerOptions;

/** Keys per group_send.lua call: bounds how long one call keeps Redis busy. */
const GROUP_SEND_CHUNK = 1000;
/** Keys per UNLINK during flush, and the SCAN COUNT hint. */
const FLUSH_BATCH = 1000;
/** Most messages the reader pops per key per drain call. */
const DRAIN_BATCH = 256;
/**
 * Extra messages popped from this process's `…!` queue while a receiver waits on it: a receiver
 * that keeps up then gets a batch per round trip instead of one message. Nothing is popped while
 * nobody waits, so a stalled consumer still fills the queue in Redis and its senders still get
 * ChannelFull; at most this many more sit in local buffers. Normal channels are work queues
 * shared with other processes: they get the bounded, given-back prefetch below instead.
 */
const LOCAL_PREFETCH = 32;
/**
 * Normal channels (work queues other processes may read too) get an adaptive prefetch instead:
 * while a receiver waits, the reader may pop up to `window` more messages, kept undecoded. The
 * window starts at 1, doubles (up to NORMAL_PREFETCH) each time the receivers here claim a
 * whole batch, and halves when some of it had to be given back. Whatever is not claimed within
 * PREFETCH_HOLD_MS of its pop goes back to the queue unchanged (same member, same score, so
 * same place), so a busy or stalled consumer never sits on work another process could do.
 */
const NORMAL_PREFETCH = 32;
const PREFETCH_HOLD_MS = 20;
/** BZPOPMIN timeout; a new key ends it (the reader's wake key), so this only bounds idle round trips. */
const BLOCK_SECONDS = 5;

/** A normal channel's popped-but-unclaimed messages (raw, as popped) and its window. */
interface Prefetch {
  members: Buffer[];
  scores: number[];
  shards: number[];
  head: number;
  window: number;
  /** Gives back what is still unclaimed PREFETCH_HOLD_MS after the oldest pop. */
  timer: NodeJS.Timeout | undefined;
}

/** One channel key a group message goes to, with the members sharing it (names as bytes). */
interface GroupQueue {
  key: string;
  channels: Buffer[];
}

let lastScore = 0;

/**
 * Send time as float Unix seconds, strictly increasing within this process: two sends in the
 * same millisecond would otherwise tie, and a ZSET orders ties by member (the random prefix),
 * breaking FIFO. 1 µs steps are well above a double's resolution at current timestamps.
 */
function nextScore(): number {
  let now = Date.now() / 1000;
  if (now <= lastScore) now = lastScore + 1e-6;
  lastScore = now;
  return now;
}

/**
 * Whether `channel`'s non-local name is `name`, itself a non-local name (without slicing: called
 * per group member). A `…!` name's only '!' is its last character, so a channel starting with
 * it has its first '!' there too.
 */
function sharesQueue(channel: string, name: string): boolean {
  return name.endsWith('!') ? channel.startsWith(name) : channel === name;
}

/**
 * The channels a decoded message's `__asgi_channel__` names (a string or a list of strings),
 * taking the field off the message: undefined when it has none, null when it is neither form.
 */
function takeTargets(message: Record<string, unknown>): string[] | undefined | null {
  const field = message[CHANNEL_FIELD];
  delete message[CHANNEL_FIELD];
  if (field === undefined) return undefined;
  if (typeof field === 'string') return [field];
  if (Array.isArray(field) && field.every((c) => typeof c === 'string')) return field as string[];
  return null;
}

/**
 * A group's members added after `expired` (names as bytes: see groupQueues), trimming the older
 * ones. The read skips expired memberships by score and the trim drops them; neither needs the
 * other to be atomic, so they are two plain commands in one write, not a script: a script
 * turning 1,000 names into Lua strings costs Redis ~0.3 ms, the plain read ~0.05–0.08 ms.
 * Written directly when it may be (writeDirect): the auto-pipeline's Map also kept each
 * 1,000-name reply alive until a full GC (see Mailboxes.vacate).
 */
function readMembers(client: Redis, key: string, expired: number): Promise<Buffer[]> {
  const min = `(${expired}`;
  const read = new Command('zrangebyscore', [key, min, '+inf']);
  const trim = new Command('zremrangebyscore', [key, '-inf', expired]);
  const replies = writeDirect(client, [read, trim])
    ? [read.promise as Promise<Buffer[]>, trim.promise]
    : [client.zrangebyscoreBuffer(key, min, '+inf'), client.zremrangebyscore(key, '-inf', expired)];
  return Promise.all(replies).then(([names]) => names as Buffer[]);
}

export class RedisChannelLayer<M extends Message = Message>
  extends BaseLayer
  implements ChannelLayer<M>
{
  /** Unique per instance; only `…${clientPrefix}!…` channels are received here. */
  readonly clientPrefix = uuidHex();
  private readonly shards: Shard[];
  private readonly placement: Placement;
  private readonly mailboxes: Mailboxes<M>;
  private reader: Reader | undefined;
  private readonly sends: SendBatcher;
  /**
   * The last queue `countWaiter` counted for: the members of one `…!` queue start waiting in a
   * row (re-receiving after a group message, say), and then need no key built and hashed each.
   */
  private lastWaited: { name: string; key: string } | undefined;
  /** Shards whose server version was checked (ensureVersion resolved): the onShard hot path. */
  private readonly verified: boolean[] = [];
  /** Next host for a normal-channel send with `normalChannelSharding: 'round-robin'`. */
  private sendCursor = 0;
  /** Queue key → receivers waiting on its channels (kept by the mailboxes' onWaiters). */
  private readonly waiting = new Map<string, number>();
  /** Normal-channel queue key → its prefetch state (see NORMAL_PREFETCH). */
  private readonly prefetched = new Map<string, Prefetch>();
  /** Give-backs in flight, awaited by close(). */
  private readonly givingBack = new Set<Promise<void>>();
  /** channel → groups this layer added it to (for deleteChannel). */
  private readonly memberships = new Map<string, Set<string>>();
  /** Process-local channels deleted lately: their messages are dropped (deleted-channels.ts). */
  private readonly deleted: DeletedChannels;
  /** Process queue key → the purge of its deleted channels' messages this tick. */
  private readonly purging = new Map<string, Promise<void>>();
  /** `shard key` → what a purge there remembers (see QueuePurge). */
  private readonly purges = new Map<string, QueuePurge>();

  constructor(options: RedisLayerOptions = {}) {
    super(options, (o) => ({
      prefixLength: o.randomPrefixLength,
      ttlSeconds: o.expiryMs / 1000 + o.fernetTtlSlack,
    }));
    const specs = this.options.hosts.map((entry: HostEntry, i) => parseHost(entry, i));
    this.placement =
      this.options.sharding === 'ring'
        ? ringPlacement(specs.map((s) => s.id))
        : crc32Placement(specs.length);
    this.shards = specs.map((spec, i) => {
      const shard = new Shard(i, spec, {
        commandTimeoutMs: this.options.commandTimeoutMs,
        lazyConnect: true,
        failFast: true,
        // Sends are already batched per shard per tick (SendBatcher); a group send is one
        // large command (all its keys), for which a pipeline would only add a deferral and a
        // copy of the payloads.
        unpipelined: [SEND, SEND_MANY, GROUP_SEND].map(scriptCommand),
      });
      const trouble = this.reportConnectionTrouble(shard);
      shard.on('down', (role: string) => {
        if (role !== 'command' || this.closed) return;
        this.count('disconnects');
        this.safeEmit('disconnect', i);
      });
      shard.on('up', (role: string) => {
        if (role !== 'command' || this.closed) return;
        trouble.reset();
        this.count('reconnects');
        this.safeEmit('reconnect', i);
      });
      // Sentinel shard back on a different master (docs/failover.md).
      shard.on('failover', (change: MasterChange) => {
        if (this.closed) return;
        this.count('failovers');
        this.safeEmit('failover', i, change);
      });
      return shard;
    });
    this.deleted = new DeletedChannels(this.options.expiryMs);
    this.mailboxes = new Mailboxes<M>({
      expiryMs: this.options.expiryMs,
      onExpired: (n) => this.count('expired', n),
      onWaiters: (channel, delta) => this.countWaiter(channel, delta),
    });
    this.sends = new SendBatcher(
      (index, work) => this.onShard(index, work),
      Math.ceil(this.options.expiryMs),
    );
  }

  // ---------------------------------------------------------------------------------------
  // ASGI channel layer interface

  async send(channel: string, message: M): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    assertMessage(message);
    const local = isProcessLocal(channel);
    const payload = this.codec.encode(local ? { ...message, [CHANNEL_FIELD]: channel } : message);
    const name = nonLocalName(channel);
    const capacity = this.capacityFor(channel);
    const score = nextScore();
    const index =
      !local && this.options.normalChannelSharding === 'round-robin'
        ? this.sendCursor++ % this.shards.length
        : this.placement.index(name);
    const added = await this.sends.send(
      index,
      this.options.prefix + name,
      score,
      payload,
      capacity,
      score - this.options.expiryMs / 1000,
    );
    if (added === 0) {
      this.count('capacityRejected');
      throw new ChannelFull(channel, capacity);
    }
    this.count('sent');
  }

  /**
   * Not `async`: an idle consumer's pending receive is then just the mailbox's promise (an
   * async function would keep its own promise and suspended frame alive too — 100,000 idle
   * consumers are a target). Errors still arrive as rejections, never synchronous throws.
   */
  receive(channel: string, opts?: ReceiveOptions): Promise<M> {
    try {
      this.assertOpen();
      assertChannelName(channel);
      const name = nonLocalName(channel);
      assertOwnChannel(channel, this.clientPrefix);
      this.deleted.revive(channel);
      // Fast path: something is buffered (prefetched or routed here) — no round trip.
      // (An already aborted signal goes to take(), which rejects it.)
      let buffered: M | undefined;
      if (!opts?.signal?.aborted) {
        buffered = this.mailboxes.takeBuffered(channel);
        if (buffered === undefined && name === channel && !channel.endsWith('!')) {
          buffered = this.claimPrefetched(this.options.prefix + channel, channel);
        }
      }
      if (buffered !== undefined) {
        this.count('received');
        return Promise.resolve(buffered);
      }
      // take() registers the waiter synchronously, so the reader sees the demand at once;
      // 'received' is counted when the reader hands the message over (deliver()).
      const taken = this.mailboxes.take(channel, opts?.signal);
      if (this.mailboxes.waiting(channel) > 0)
        this.startReader().notice(this.options.prefix + name);
      return taken;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async newChannel(prefix = 'specific'): Promise<string> {
    this.assertOpen();
    return newProcessChannel(prefix, this.clientPrefix);
  }

  async groupAdd(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    await this.onGroupShard(group, (client, key) =>
      groupAddScript(client, {
        group: key,
        score: nextScore(),
        channel,
        ttlMs: Math.ceil(this.options.groupExpiryMs),
      }),
    );
    let groups = this.memberships.get(channel);
    if (!groups) {
      groups = new Set();
      this.memberships.set(channel, groups);
    }
    groups.add(group);
  }

  async groupDiscard(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    await this.onGroupShard(group, (client, key) => client.zrem(key, channel));
    const groups = this.memberships.get(channel);
    if (groups?.delete(group) && groups.size === 0) this.memberships.delete(channel);
  }

  async groupSend(group: string, message: M): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertMessage(message);
    // Refuses a bad or oversized message before touching Redis.
    const encodeFor = this.codec.groupEncoder(message);
    this.count('groupSends');
    const expired = nextScore() - this.options.groupExpiryMs / 1000;
    const members = await this.onGroupShard(group, (client, key) =>
      readMembers(client, key, expired),
    );
    this.notify('groupFanOut', members.length);
    if (members.length === 0) return;

    const perShard = new Map<number, GroupQueue[]>();
    for (const [name, channels] of groupQueues(members)) {
      const index = this.placement.index(name);
      const queue = { key: this.options.prefix + name, channels };
      const queues = perShard.get(index);
      if (queues) queues.push(queue);
      else perShard.set(index, [queue]);
    }

    const score = nextScore();
    const expiredBefore = score - this.options.expiryMs / 1000;
    const args = { score, expiredBefore, ttlMs: Math.ceil(this.options.expiryMs) };
    const calls: Array<Promise<void>> = [];
    for (const [index, queues] of perShard) {
      for (let start = 0; start < queues.length; start += GROUP_SEND_CHUNK) {
        const chunk = queues.slice(start, start + GROUP_SEND_CHUNK);
        const sends = chunk.map((q) => ({
          queue: q.key,
          member: encodeFor(q.channels),
          capacity: this.capacityFor(q.channels[0]!.toString()),
        }));
        calls.push(
          this.onShard(index, (client) => groupSendScript(client, args, sends)).then((outcomes) =>
            chunk.forEach((q, i) => {
              const outcome = outcomes[i]!;
              if (outcome instanceof NotAChannelQueue) {
                this.reportError(outcome, `group send to ${group}`);
              } else {
                this.count(
                  outcome === 'full' ? 'groupDropped' : 'groupDeliveries',
                  q.channels.length,
                );
              }
            }),
          ),
        );
      }
    }
    const results = await Promise.allSettled(calls);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async flush(): Promise<void> {
    this.assertOpen();
    const pattern = prefixPattern(this.options.prefix);
    await Promise.all(
      this.shards.map((shard) =>
        this.onShard(shard.index, async (client) => {
          let cursor = '0';
          do {
            const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', FLUSH_BATCH);
            cursor = next;
            if (keys.length > 0) await client.unlink(...keys);
          } while (cursor !== '0');
        }),
      ),
    );
    this.mailboxes.clear();
    for (const state of this.prefetched.values()) this.resetPrefetch(state);
    this.memberships.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    // Prefetched normal-channel messages go back to their queues before the connections close.
    for (const key of this.prefetched.keys()) void this.giveBack(key, false);
    this.prefetched.clear();
    await Promise.all(this.givingBack);
    this.mailboxes.close(new LayerClosed(this.constructor.name));
    for (const shard of this.shards) shard.close();
    this.memberships.clear();
  }

  // ---------------------------------------------------------------------------------------
  // Beyond the ASGI interface

  /**
   * Forgets a channel: leaves every group this layer added it to and drops its buffer. A
   * process-local channel's messages still queued in Redis are removed, and any popped later
   * dropped (they would hold places in the queue all its channels share); a normal channel's
   * prefetched messages go back to its queue, which belongs to every process reading it.
   */
  async deleteChannel(channel: string): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    const groups = [...(this.memberships.get(channel) ?? [])];
    this.memberships.delete(channel);
    this.count('deletedDropped', this.mailboxes.drop(channel));
    let queue: Promise<void>;
    if (isProcessLocal(channel)) {
      this.deleted.add(channel);
      queue = this.purgeDeleted(this.options.prefix + nonLocalName(channel));
    } else {
      const key = this.options.prefix + channel;
      queue = this.giveBack(key, false);
      this.prefetched.delete(key);
    }
    await Promise.all([
      queue,
      ...groups.map((group) =>
        this.onGroupShard(group, (client, key) => client.zrem(key, channel)),
      ),
    ]);
  }

  /** Number of Redis hosts (shards). */
  get shardCount(): number {
    return this.shards.length;
  }

  /** The shard a channel's queue (or, with `group: true`, a group) lives on. */
  shardOf(name: string, { group = false } = {}): number {
    return this.placement.index(group ? name : nonLocalName(name));
  }

  // ---------------------------------------------------------------------------------------
  // Internals

  private groupKey(group: string): string {
    return `${this.options.prefix}:group:${group}`;
  }

  /**
   * Runs `work` on the group's key, on its shard. A key holding something other than a sorted
   * set refuses the first command with WRONGTYPE (nothing is written: each operation's first
   * command reads or writes the key): that is reported as NotAGroup, not as Redis's raw reply.
   */
  private onGroupShard<T>(
    group: string,
    work: (client: Redis, key: string) => Promise<T>,
  ): Promise<T> {
    const key = this.groupKey(group);
    return this.onShard(this.placement.index(group), (client) =>
      work(client, key).catch((err: unknown) => {
        throw /WRONGTYPE/.test(errorMessage(err)) ? new NotAGroup(group, key) : err;
      }),
    );
  }

  /**
   * Runs `work` with shard `index`'s command client, once its version is checked. Failures come
   * back naming the shard; after close() they say the layer is closed.
   */
  private onShard<T>(index: number, work: (client: Redis) => Promise<T>): Promise<T> {
    const shard = this.shards[index]!;
    // Hot path (every send): connected and checked, so no extra awaits per command.
    if (this.verified[index] === true && shard.client.status === 'ready') {
      try {
        return work(shard.client).catch((err: unknown) => {
          throw this.failure(index, err);
        });
      } catch (err) {
        return Promise.reject(this.failure(index, err));
      }
    }
    return this.onShardConnecting(index, work);
  }

  private async onShardConnecting<T>(
    index: number,
    work: (client: Redis) => Promise<T>,
  ): Promise<T> {
    const shard = this.shards[index]!;
    try {
      await shard.whenReady();
      await shard.ensureVersion();
      this.verified[index] = true;
      return await work(shard.client);
    } catch (err) {
      throw this.failure(index, err);
    }
  }

  /** A command failure as the error to give the caller (see onShard). */
  private failure(index: number, err: unknown): unknown {
    if (this.closed) return new LayerClosed(this.constructor.name);
    return this.shards[index]!.explain(err);
  }

  /** Keeps `waiting` (receivers per queue key) as receivers start and stop waiting. */
  private countWaiter(channel: string, delta: 1 | -1): void {
    let key: string;
    const last = this.lastWaited;
    if (last !== undefined && sharesQueue(channel, last.name)) key = last.key;
    else {
      const name = nonLocalName(channel);
      key = this.options.prefix + name;
      this.lastWaited = { name, key };
    }
    this.addWaiting(key, delta);
  }

  private addWaiting(key: string, delta: number): void {
    const n = (this.waiting.get(key) ?? 0) + delta;
    if (n > 0) this.waiting.set(key, n);
    else this.waiting.delete(key);
  }

  private startReader(): Reader {
    if (this.reader) return this.reader;
    this.reader = new Reader(
      this.shards,
      {
        demand: () => this.demand(),
        deliver: (key, member, score, shard) => this.deliver(key, member, score, shard),
        report: (err, context) => this.reportError(err, context),
      },
      {
        blockSeconds: BLOCK_SECONDS,
        batch: DRAIN_BATCH,
        restoreTtlMs: Math.ceil(this.options.expiryMs),
        wakeKey: wakeKey(this.options.prefix, this.clientPrefix),
      },
    );
    return this.reader;
  }

  /**
   * Queue keys with waiting receivers and how many messages each may give: one per waiter, plus
   * LOCAL_PREFETCH for a process-local key. Every `…!` channel of one newChannel prefix shares
   * one key, so their waiters add up; a message popped for a channel nobody waits on is buffered
   * for it (bounded by capacity, expiring), as channels_redis does.
   */
  private demand(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, waiters] of this.waiting) {
      const extra = key.endsWith('!') ? LOCAL_PREFETCH : (this.prefetched.get(key)?.window ?? 1);
      out.set(key, waiters + extra);
    }
    return out;
  }

  /** A popped member: check age, decode, route by `__asgi_channel__` to local mailboxes. */
  private deliver(key: string, member: Buffer, score: number, shard: number): void {
    if (this.closed) return;
    if (!key.endsWith('!')) {
      // A normal channel (its key is prefix + name). Receivers waiting here always come first;
      // while one waits, nothing is prefetched, so handing this over keeps FIFO.
      const channel = key.slice(this.options.prefix.length);
      if (this.mailboxes.waiting(channel) === 0) {
        this.hold(key, member, score, shard);
        return;
      }
    }
    this.route(key, member, score, shard);
  }

  /** Decodes a popped member and routes it by `__asgi_channel__` to local mailboxes. */
  private route(key: string, member: Buffer, score: number, shard: number): void {
    const expiresAt = score * 1000 + this.options.expiryMs;
    const now = Date.now();
    if (!(expiresAt > now)) {
      this.count('expired');
      return;
    }
    this.notify('queueWait', now - score * 1000);
    let message: Record<string, unknown>;
    try {
      message = this.codec.decode(member);
    } catch (err) {
      this.skipUnreadable(`in ${key} on shard ${shard}`, err);
      return;
    }
    const named = takeTargets(message);
    const name = key.slice(this.options.prefix.length);
    // Without the field, a process queue's message (the queue all its channels share) is nobody's.
    if (named === null || (named === undefined && key.endsWith('!'))) {
      this.skipUnreadable(
        `in ${key} on shard ${shard}`,
        new UnreadablePayload(
          named === null
            ? `${CHANNEL_FIELD} is neither a string nor a list of strings`
            : `no ${CHANNEL_FIELD} in a message of a process queue`,
        ),
      );
      return;
    }
    const targets = named ?? [name];
    // Most messages have one target: the copier is made only for a second one.
    let copy: (() => M) | undefined;
    let first = true;
    // Every target's waiters are counted under this key (they share the queue): one update for
    // all the deliveries, not a countWaiter per member.
    let delivered = 0;
    for (const channel of targets) {
      // A message only reaches channels whose queue it came from, and live ones.
      if (!sharesQueue(channel, name)) continue;
      if (this.isDeleted(channel)) {
        this.count('deletedDropped');
        continue;
      }
      const put = this.mailboxes.put(
        channel,
        first ? (message as M) : (copy ??= copier(message as M))(),
        this.capacityFor(channel),
        'drop-oldest',
        expiresAt,
        true,
      );
      first = false;
      if (put === 'delivered') delivered++;
      else if (put === 'displaced') this.count('localDropped');
    }
    if (delivered > 0) {
      this.count('received', delivered);
      this.addWaiting(key, -delivered);
    }
  }

  /** Deleted (deleteChannel) and not received on since: nothing more is delivered to it. */
  private isDeleted(channel: string): boolean {
    return this.deleted.has(channel) && this.mailboxes.waiting(channel) === 0;
  }

  /** The channels of process queue `name` a queued member is for ([] when undecodable). */
  private queuedFor(name: string, member: Buffer): string[] {
    try {
      return (takeTargets(this.codec.decode(member)) ?? []).filter((c) => sharesQueue(c, name));
    } catch {
      return []; // the reader skips and counts it when it pops it
    }
  }

  /**
   * Removes the messages queued in process queue `key` whose channels are all deleted, on every
   * shard (it is read on every shard, #221). The deleteChannel calls of one tick share a pass.
   */
  private purgeDeleted(key: string): Promise<void> {
    let pass = this.purging.get(key);
    if (pass !== undefined) return pass;
    pass = new Promise<void>((resolve) => process.nextTick(resolve)).then(async () => {
      this.purging.delete(key); // a delete from now on gets a pass of its own
      await Promise.all(
        this.shards.map((shard) =>
          this.onShard(shard.index, (client) =>
            this.purgeOf(shard.index, key).run(client, key),
          ).then((dropped) => this.count('deletedDropped', dropped)),
        ),
      );
    });
    this.purging.set(key, pass);
    return pass;
  }

  /** The purge of process queue `key` on shard `index` (what it remembers lives on). */
  private purgeOf(index: number, key: string): QueuePurge {
    const id = `${index} ${key}`;
    let purge = this.purges.get(id);
    if (purge === undefined) {
      const name = key.slice(this.options.prefix.length);
      purge = new QueuePurge(
        (member) => this.queuedFor(name, member),
        (channel) => this.isDeleted(channel),
      );
      this.purges.set(id, purge);
    }
    return purge;
  }

  /** Keeps a popped normal-channel member for the next receive; given back if unclaimed. */
  private hold(key: string, member: Buffer, score: number, shard: number): void {
    let state = this.prefetched.get(key);
    if (!state) {
      state = { members: [], scores: [], shards: [], head: 0, window: 1, timer: undefined };
      this.prefetched.set(key, state);
    }
    state.members.push(member);
    state.scores.push(score);
    state.shards.push(shard);
    state.timer ??= setTimeout(() => this.giveBack(key, true), PREFETCH_HOLD_MS);
  }

  /**
   * The oldest prefetched message of a normal channel, decoded (expired and unreadable ones
   * are skipped and counted as when popped), or undefined when none is held.
   */
  private claimPrefetched(key: string, channel: string): M | undefined {
    const state = this.prefetched.get(key);
    if (!state) return undefined;
    while (state.head < state.members.length) {
      const i = state.head++;
      const member = state.members[i]!;
      const score = state.scores[i]!;
      const shard = state.shards[i]!;
      state.members[i] = undefined as never;
      if (state.head === state.members.length) {
        // The whole batch was claimed: this consumer keeps up, so let it take more next time.
        this.resetPrefetch(state);
        state.window = Math.min(NORMAL_PREFETCH, state.window * 2);
      }
      // route() hands the message to a mailbox; with nobody waiting, it is buffered there.
      this.route(key, member, score, shard);
      const message = this.mailboxes.takeBuffered(channel);
      if (message !== undefined) return message;
    }
    return undefined;
  }

  private resetPrefetch(state: Prefetch): void {
    clearTimeout(state.timer);
    state.timer = undefined;
    state.members = [];
    state.scores = [];
    state.shards = [];
    state.head = 0;
  }

  /**
   * Returns a normal channel's unclaimed prefetched messages to their queues (on the shard
   * each came from). `slow`: they outstayed PREFETCH_HOLD_MS, so the window halves.
   */
  private giveBack(key: string, slow: boolean): Promise<void> {
    const state = this.prefetched.get(key);
    if (!state || state.head === state.members.length) return Promise.resolve();
    const { members, scores, shards, head } = state;
    this.resetPrefetch(state);
    if (slow) state.window = Math.max(1, state.window >> 1);
    const now = Date.now();
    const perShard = new Map<number, Array<{ score: number; member: Buffer }>>();
    for (let i = head; i < members.length; i++) {
      if (!(scores[i]! * 1000 + this.options.expiryMs > now)) {
        this.count('expired');
        continue;
      }
      let messages = perShard.get(shards[i]!);
      if (!messages) perShard.set(shards[i]!, (messages = []));
      messages.push({ score: scores[i]!, member: members[i]! });
    }
    const args = { queue: key, ttlMs: Math.ceil(this.options.expiryMs) };
    const calls = [...perShard].map(([index, messages]) =>
      giveBackScript(this.shards[index]!.client, args, messages).then(
        () => undefined,
        (err: unknown) => {
          // Lost with the connection, like a pop whose reply never arrived (docs/redis-core.md).
          if (!this.closed) this.reportError(err, `giving back prefetched messages of ${key}`);
        },
      ),
    );
    const done = Promise.all(calls).then(() => undefined);
    this.givingBack.add(done);
    void done.finally(() => this.givingBack.delete(done));
    return done;
  }
}
