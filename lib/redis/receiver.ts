/**
 * The core layer's receive side, from a receive to the message handed over, in that order:
 *
 * 1. `receive`: a message already buffered here (routed earlier, or prefetched for a normal
 *    channel) is returned at once; otherwise a waiter is registered (mailboxes.ts), which adds
 *    to the demand (demand.ts), and the reader is told about the queue key.
 * 2. The reader (reader.ts) pops what the demand allows, on every shard, and hands each popped
 *    member to `popped`.
 * 3. `popped` → `route`: drop it if expired, decode it, find its channels (`__asgi_channel__`
 *    for a process queue, the key's own channel for a normal one), put it in their mailboxes —
 *    or, for a normal channel nobody here waits on right now, hold it as prefetch (prefetch.ts).
 *
 * Also here, since it is about what this process may still receive: channels deleted lately
 * (`forget`), whose queued messages are removed from Redis and whose late ones are dropped
 * (deleted-channels.ts).
 */
import type { ResolvedOptions } from '../config.ts';
import { UnreadablePayload } from '../errors.ts';
import type { CounterName } from '../layers/base.ts';
import { Mailboxes } from '../mailboxes.ts';
import { isProcessLocal, nonLocalName, sharesQueue } from '../names.ts';
import { copier } from '../serde/clone.ts';
import { CHANNEL_FIELD, type Codec } from '../serde/codec.ts';
import type { Message, ReceiveOptions } from '../types.ts';
import { DeletedChannels, QueuePurge } from './deleted-channels.ts';
import { Demand } from './demand.ts';
import type { ReaderState } from './health.ts';
import { Prefetch } from './prefetch.ts';
import { Reader } from './reader.ts';
import { giveBackScript } from './script-calls.ts';
import type { ShardSet } from './shard-set.ts';
import { wakeKey } from './wake.ts';

/** Most messages the reader pops per key per drain call. */
const DRAIN_BATCH = 256;
/** BZPOPMIN timeout; a new key ends it (the reader's wake key), so this only bounds idle round trips. */
const BLOCK_SECONDS = 5;

/** What the receive side needs from its layer. */
export interface ReceiverContext {
  shards: ShardSet;
  codec: Codec;
  options: ResolvedOptions;
  clientPrefix: string;
  count(name: CounterName, by?: number): void;
  capacityFor(channel: string): number;
  skipUnreadable(where: string, err: unknown): void;
  report(err: unknown, context: string): void;
  isClosed(): boolean;
  /** Instrumentation (BaseLayer.observe): `queueWait` per message taken out of Redis. */
  notify(event: 'queueWait', value: number): void;
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

export class Receiver<M extends Message> {
  private readonly mailboxes: Mailboxes<M>;
  private readonly demand: Demand;
  private readonly prefetch: Prefetch;
  private reader: Reader | undefined;
  private readonly prefix: string;
  private readonly expiryMs: number;
  /** Process-local channels deleted lately: their messages are dropped. */
  private readonly deleted: DeletedChannels;
  /** Process queue key → the purge of its deleted channels' messages this tick. */
  private readonly purging = new Map<string, Promise<void>>();
  /** `shard key` → what a purge there remembers (see QueuePurge). */
  private readonly purges = new Map<string, QueuePurge>();

  constructor(private readonly ctx: ReceiverContext) {
    const { prefix, expiryMs } = ctx.options;
    this.prefix = prefix;
    this.expiryMs = expiryMs;
    this.deleted = new DeletedChannels(expiryMs);
    const ttlMs = Math.ceil(expiryMs);
    this.prefetch = new Prefetch(
      expiryMs,
      (shard, key, messages) =>
        ctx.shards
          .run(shard, (client) => giveBackScript(client, { queue: key, ttlMs }, messages))
          .then(
            () => undefined,
            (err: unknown) => {
              // Lost with the connection, like a pop whose reply never arrived (docs/redis-core.md).
              if (!ctx.isClosed()) ctx.report(err, `giving back prefetched messages of ${key}`);
            },
          ),
      () => ctx.count('expired'),
    );
    this.demand = new Demand(prefix, (key) => this.prefetch.window(key));
    this.mailboxes = new Mailboxes<M>({
      expiryMs,
      onExpired: (n) => ctx.count('expired', n),
      onWaiters: (channel, delta) => this.demand.onWaiters(channel, delta),
    });
  }

  /**
   * Not `async`: an idle consumer's pending receive is then just the mailbox's promise (an
   * async function would keep its own promise and suspended frame alive too — 100,000 idle
   * consumers are a target). The caller has checked the name and that the channel is ours.
   */
  receive(channel: string, opts?: ReceiveOptions): Promise<M> {
    const name = nonLocalName(channel);
    this.deleted.revive(channel);
    // Fast path: something is buffered (prefetched or routed here) — no round trip.
    // (An already aborted signal goes to take(), which rejects it.)
    let buffered: M | undefined;
    if (!opts?.signal?.aborted) {
      buffered = this.mailboxes.takeBuffered(channel);
      if (buffered === undefined && name === channel) {
        const key = this.prefix + channel;
        buffered = this.prefetch.claim(key, ({ member, score, shard }) => {
          // route() hands it to a mailbox; with nobody waiting, it is buffered there.
          this.route(key, member, score, shard);
          return this.mailboxes.takeBuffered(channel);
        });
      }
    }
    if (buffered !== undefined) {
      this.ctx.count('received');
      return Promise.resolve(buffered);
    }
    // take() registers the waiter synchronously, so the reader sees the demand at once;
    // 'received' is counted when a message is handed over (route()).
    const taken = this.mailboxes.take(channel, opts?.signal);
    if (this.mailboxes.waiting(channel) > 0) this.startReader().notice(this.prefix + name);
    return taken;
  }

  /**
   * Forgets a channel (deleteChannel): drops its buffer. A process-local channel's messages still
   * queued in Redis are removed, and any popped later dropped (they would hold places in the
   * queue all its channels share); a normal channel's prefetched messages go back to its queue,
   * which belongs to every process reading it.
   */
  forget(channel: string): Promise<void> {
    this.ctx.count('deletedDropped', this.mailboxes.drop(channel));
    if (!isProcessLocal(channel)) return this.prefetch.forget(this.prefix + channel);
    this.deleted.add(channel);
    return this.purgeDeleted(this.prefix + nonLocalName(channel));
  }

  /** Drops every local buffer (flush). */
  clear(): void {
    this.mailboxes.clear();
    this.prefetch.clear();
  }

  /** Not started (nothing received yet), running, or stopped (closed). */
  get readerState(): ReaderState {
    if (this.reader === undefined) return 'idle';
    return this.reader.stopped ? 'stopped' : 'running';
  }

  /** How long the longest-waiting receive has waited (ms), or undefined when none waits. */
  oldestWaitMs(): number | undefined {
    return this.mailboxes.oldestWaitMs();
  }

  /** Stops the reader, gives prefetched messages back, rejects pending receives with `err`. */
  async close(err: Error): Promise<void> {
    this.reader?.stop();
    // Prefetched normal-channel messages go back to their queues before the connections close.
    await this.prefetch.close();
    this.mailboxes.close(err);
  }

  private startReader(): Reader {
    this.reader ??= new Reader(
      this.ctx.shards.readTargets(wakeKey(this.prefix, this.ctx.clientPrefix)),
      {
        demand: () => this.demand.budgets(),
        deliver: (key, member, score, shard) => this.popped(key, member, score, shard),
        report: (err, context) => this.ctx.report(err, context),
      },
      {
        blockSeconds: BLOCK_SECONDS,
        batch: DRAIN_BATCH,
        restoreTtlMs: Math.ceil(this.expiryMs),
      },
    );
    return this.reader;
  }

  /**
   * A member the reader popped from `key` (its parts as separate arguments: an object per
   * message only when it is held as prefetch: less for the collector on the hot path).
   */
  private popped(key: string, member: Buffer, score: number, shard: number): void {
    if (this.ctx.isClosed()) return;
    // A normal channel (its key is prefix + name): receivers waiting here always come first;
    // while one waits, nothing is prefetched, so handing this over keeps FIFO.
    if (!key.endsWith('!') && this.mailboxes.waiting(key.slice(this.prefix.length)) === 0) {
      this.prefetch.hold(key, { member, score, shard });
      return;
    }
    this.route(key, member, score, shard);
  }

  /** Decodes a popped member and routes it by `__asgi_channel__` to local mailboxes. */
  private route(key: string, member: Buffer, score: number, shard: number): void {
    const { ctx } = this;
    const expiresAt = score * 1000 + this.expiryMs;
    const now = Date.now();
    if (!(expiresAt > now)) {
      ctx.count('expired');
      return;
    }
    ctx.notify('queueWait', now - score * 1000);
    let message: Record<string, unknown>;
    try {
      message = ctx.codec.decode(member);
    } catch (err) {
      ctx.skipUnreadable(`in ${key} on shard ${shard}`, err);
      return;
    }
    const named = takeTargets(message);
    const name = key.slice(this.prefix.length);
    // Without the field, a process queue's message (the queue all its channels share) is nobody's.
    if (named === null || (named === undefined && key.endsWith('!'))) {
      ctx.skipUnreadable(
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
    // all the deliveries, not one per member.
    let delivered = 0;
    for (const channel of targets) {
      // A message only reaches channels whose queue it came from, and live ones.
      if (!sharesQueue(channel, name)) continue;
      if (this.isDeleted(channel)) {
        ctx.count('deletedDropped');
        continue;
      }
      const put = this.mailboxes.put(
        channel,
        first ? (message as M) : (copy ??= copier(message as M))(),
        ctx.capacityFor(channel),
        'drop-oldest',
        expiresAt,
        true,
      );
      first = false;
      if (put === 'delivered') delivered++;
      else if (put === 'displaced') ctx.count('localDropped');
    }
    if (delivered > 0) {
      ctx.count('received', delivered);
      this.demand.add(key, -delivered);
    }
  }

  /** Deleted (forget) and not received on since: nothing more is delivered to it. */
  private isDeleted(channel: string): boolean {
    return this.deleted.has(channel) && this.mailboxes.waiting(channel) === 0;
  }

  /**
   * Removes the messages queued in process queue `key` whose channels are all deleted, on every
   * shard (it is read on every shard, #221). The forget calls of one tick share a pass.
   */
  private purgeDeleted(key: string): Promise<void> {
    let pass = this.purging.get(key);
    if (pass !== undefined) return pass;
    const { shards } = this.ctx;
    pass = new Promise<void>((resolve) => process.nextTick(resolve)).then(async () => {
      this.purging.delete(key); // a delete from now on gets a pass of its own
      await Promise.all(
        shards
          .everywhere(key)
          .map((index) =>
            shards
              .run(index, (client) => this.purgeOf(index, key).run(client, key))
              .then((dropped) => this.ctx.count('deletedDropped', dropped)),
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
      const name = key.slice(this.prefix.length);
      purge = new QueuePurge(
        (member) => this.queuedFor(name, member),
        (channel) => this.isDeleted(channel),
      );
      this.purges.set(id, purge);
    }
    return purge;
  }

  /** The channels of process queue `name` a queued member is for ([] when undecodable). */
  private queuedFor(name: string, member: Buffer): string[] {
    try {
      return (takeTargets(this.ctx.codec.decode(member)) ?? []).filter((c) => sharesQueue(c, name));
    } catch {
      return []; // the reader skips and counts it when it pops it
    }
  }
}
