/**
 * The core layer's reader: one per layer instance, one loop per read target — each shard of the
 * hosts (shard-set.ts), or each demanded slot of a Redis Cluster (cluster-shards.ts) — each with
 * its own blocking connection, all listened to at once.
 *
 * What to read comes from the hooks' `demand()`: the queue keys that have waiting receivers in
 * this process, each with a budget (how many receivers wait on channels of that key). A message
 * leaves Redis only when a receiver here wants one, so the queue in Redis keeps its capacity
 * (senders still get ChannelFull from a slow consumer) and its expiry, and a normal channel —
 * a work queue shared with other processes — is never hoarded by one of them.
 *
 * Each shard loop repeats: drain the demanded keys with `drain.lua` (non-blocking ZPOPMIN, up to
 * each budget, again while budgets remain and messages come), then block in `BZPOPMIN k1 … kn`
 * over them and the loop's own wake key (wake.ts). When a receiver starts waiting on a key that
 * a block in progress lacks, a command connection adds a member to the wake key (wake.lua),
 * which ends the block; the loop drains and blocks again over the keys demanded
 * now — a new receiver never waits out the block timeout (channels_redis waits up to 5 s per
 * shard in turn). Unlike CLIENT UNBLOCK (`@dangerous`, refused to a least-privilege ACL user) a
 * wake needs no client id and is never lost to a race: one that arrives before the block stays
 * until the block pops it, and a leftover only costs one extra drain. Keys leave lazily: a key
 * nobody waits on any more is simply not part of the next block.
 *
 * A key found holding something other than a sorted set (not ours) is reported and left out of
 * the reads; it is looked at again after FOREIGN_RECHECK_MS (doubling while it stays foreign),
 * so a receiver waiting on it is served once the key is a queue again.
 *
 * A process-local queue (key ending in `!`) is read on every shard, since a channels_redis
 * sender places those by the full channel name (upstream #221). A normal channel's queue is read
 * on every shard too (channels_redis senders round-robin them), and a channels_redis receiver's
 * leftover `$inflight` backup is put back into it once, before the key is first read here.
 *
 * The blocking connection never reconnects by itself (`retryStrategy: null`): a lost connection
 * rejects the pending command at once (ioredis would otherwise resend or silently drop it), and
 * the loop opens a fresh connection after a backoff. Its command timeout is longer than the
 * block (upstream #422, ioredis #1888), so a dead socket is noticed. No timer or socket survives
 * `stop()`.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { ConnectionError, errorMessage, RedisTooOld } from '../errors.ts';
import { drainScript } from './script-calls.ts';
import { ERROR_TEXT } from './ioredis-internals.ts';

/** First wait before a foreign key (not a sorted set) is read again; doubles up to the max. */
const FOREIGN_RECHECK_MS = 1000;
const FOREIGN_RECHECK_MAX_MS = 60_000;
/** How long a loop whose target retires when idle waits for demand before it ends. */
const IDLE_RETIRE_MS = 30_000;

export interface ReaderHooks {
  /** Queue keys with waiting receivers, each with how many messages it may give right now. */
  demand(): Map<string, number>;
  /** One popped message, in pop order per key. `score` is the member's score (send time). */
  deliver(key: string, member: Buffer, score: number, shard: number): void;
  /** A background failure worth telling the user about (never thrown). */
  report(err: unknown, context: string): void;
}

export interface ReaderOptions {
  /** BZPOPMIN timeout in whole seconds (Redis 5 takes integers only). */
  blockSeconds: number;
  /** Most messages popped per key per drain call. */
  batch: number;
  /** TTL (ms) given to a queue that `$inflight` messages were restored into. */
  restoreTtlMs: number;
}

/** Where one loop reads: a shard of the hosts, or a slot of a Redis Cluster. */
export interface ReadTarget {
  /** Passed to `deliver` as the message's place (a shard index, a slot). */
  readonly index: number;
  /** Names it in reports. */
  readonly label: string;
  /** The loop's wake key (wake.ts): on a cluster, in the slot of the keys it reads. */
  readonly wakeKey: string;
  /** Whether the loop reads `key` (undefined: every demanded key). */
  readonly owns?: (key: string) => boolean;
  /** Resolves once the target can be read (connected, version checked). */
  ready(): Promise<void>;
  /** A dedicated connection for blocking reads. */
  connect(options: RedisOptions): Redis;
  release(conn: Redis): void;
  /** Writes the wake member (wake.lua) through a command connection. */
  wake(): Promise<void>;
  /**
   * Puts back what a channels_redis receiver left in `key`'s `$inflight` backup (the loop's
   * connection is given: it reaches `key`'s server).
   */
  restoreInflight(conn: Redis, key: string, ttlMs: number): Promise<unknown>;
  retryDelay(attempt: number): number;
  /** Calls `listener` when trying again now is worth it (back up, failover); returns the unsubscribe. */
  onBack(listener: () => void): () => void;
  /** A read failed with `err`: a cluster target refreshes its map of slots. */
  failed?(err: unknown): void;
  /** A loop without demand may close its connection and end (a cluster slot's loop). */
  readonly retiresWhenIdle?: boolean;
  /**
   * Whether `conn` (from `connect`) may block (undefined: always); one that may not — a shared
   * command connection — is read every `pollMs` instead.
   */
  readonly canBlock?: (conn: Redis) => boolean;
  readonly pollMs?: number;
  /** Its BZPOPMIN timeout, when shorter than the reader's (a cluster slot: see cluster-shards.ts). */
  readonly blockSeconds?: number;
}

/** The targets a key is read from: every shard (hosts), or its slot's (cluster). */
export type TargetsOf = (key: string) => readonly ReadTarget[];

export class Reader {
  private readonly loops = new Map<ReadTarget, ShardLoop>();
  private readonly abort = new AbortController();

  constructor(
    private readonly targetsOf: TargetsOf,
    readonly hooks: ReaderHooks,
    readonly opts: ReaderOptions,
  ) {}

  get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /**
   * A receiver started waiting on `key` (starting its targets' loops on first use). A block in
   * progress that does not include the key is interrupted so the next one does; an idle loop
   * wakes up.
   */
  notice(key: string): void {
    if (this.stopped) return;
    for (const target of this.targetsOf(key)) {
      let loop = this.loops.get(target);
      if (loop === undefined || loop.retired) {
        loop = new ShardLoop(this, target);
        this.loops.set(target, loop);
        void loop.run().finally(() => {
          if (this.loops.get(target) === loop) this.loops.delete(target);
        });
      }
      loop.notice(key);
    }
  }

  /** Stops every loop and closes every blocking connection; pending commands reject at once. */
  stop(): void {
    if (this.stopped) return;
    this.abort.abort();
    for (const loop of this.loops.values()) loop.stop();
  }

  /** Keys of `target` worth reading now with their budgets (capped at `batch`). */
  budgets(
    target: ReadTarget,
    exclude: { has(key: string): boolean },
  ): { keys: string[]; budgets: number[] } {
    const keys: string[] = [];
    const budgets: number[] = [];
    const { owns } = target;
    for (const [key, budget] of this.hooks.demand()) {
      if (budget <= 0 || exclude.has(key) || (owns !== undefined && !owns(key))) continue;
      keys.push(key);
      budgets.push(Math.min(budget, this.opts.batch));
    }
    return { keys, budgets };
  }
}

/**
 * Trouble the layer already reports through 'disconnect' (or that passes on its own): ioredis's
 * own connection errors (their texts are kept in one place, ioredis-internals.ts), socket
 * errors, and a server that is loading, demoted or without its master.
 */
const CONNECTION_TROUBLE = new RegExp(
  [
    ...Object.values(ERROR_TEXT).map((text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
    'ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN',
    '^LOADING|^READONLY|^MASTERDOWN',
    // A cluster slot moved, is moving, or has no master for now (cluster-shards.ts).
    '^MOVED|^ASK|^TRYAGAIN|^CLUSTERDOWN',
  ].join('|'),
);

function isConnectionError(err: unknown): boolean {
  return err instanceof ConnectionError || CONNECTION_TROUBLE.test(errorMessage(err));
}

class ShardLoop {
  private conn: Redis | undefined;
  /** Keys of the BZPOPMIN in flight, if one is. */
  private blocking: Set<string> | undefined;
  /** The block a wake was sent for (one is enough: the loop then reads the demand anew). */
  private woken: Set<string> | undefined;
  /** Wakes a loop that has nothing to watch. */
  private wakeIdle: (() => void) | undefined;
  /** Ends a backoff early (stop only: a new receiver must not hurry reconnect attempts). */
  private endPause: (() => void) | undefined;
  private readonly restored = new Set<string>();
  /** Ended for want of demand (ReadTarget.retiresWhenIdle): a new key needs a new loop. */
  retired = false;
  /**
   * Keys on this shard found holding something other than a sorted set (not ours): not read
   * until their timer fires and they are tried again.
   */
  private readonly foreign = new Map<string, NodeJS.Timeout>();
  /** The wait before the next look at a key should it be foreign again; dropped once it reads. */
  private readonly recheckDelay = new Map<string, number>();

  constructor(
    private readonly reader: Reader,
    private readonly target: ReadTarget,
  ) {}

  async run(): Promise<void> {
    const { reader, target } = this;
    let failures = 0;
    let lastReported: string | undefined;
    while (!reader.stopped) {
      try {
        await target.ready();
        const conn = this.connection();
        await this.drain(conn);
        if (reader.stopped) break;
        const { keys } = reader.budgets(target, this.foreign);
        if (keys.length === 0) {
          if (!(await this.idle())) break;
          continue;
        }
        if (target.canBlock?.(conn) === false) {
          await this.wait(target.pollMs);
          continue;
        }
        const { wakeKey } = target;
        const blockSeconds = target.blockSeconds ?? reader.opts.blockSeconds;
        this.blocking = new Set(keys);
        // The wake key first: a pending wake ends the block at once, and the drain that follows
        // takes whatever the other keys hold.
        const popped = await conn.bzpopminBuffer(wakeKey, ...keys, blockSeconds);
        this.blocking = undefined;
        if (popped) {
          const key = popped[0].toString();
          if (key !== wakeKey) this.deliver(key, popped[1], popped[2]);
        }
        failures = 0;
        lastReported = undefined;
      } catch (err) {
        this.blocking = undefined;
        if (reader.stopped) break;
        const message = errorMessage(err);
        // BZPOPMIN met a key turned foreign after the drain: the next drain finds, reports and
        // skips it. The connection is fine; the backoff only guards against a loop.
        const wrongType = /^WRONGTYPE/.test(message);
        if (!wrongType) this.dropConnection();
        target.failed?.(err);
        if (err instanceof RedisTooOld) {
          reader.hooks.report(err, `${target.label} reader stopped`);
          return;
        }
        // Connection trouble is reported by the layer's 'disconnect' event; anything else
        // (a script error, say) is worth a word — once, not at every retry.
        if (!wrongType && !isConnectionError(err) && message !== lastReported) {
          lastReported = message;
          reader.hooks.report(err, `reader on ${target.label}`);
        }
        await this.pause(target.retryDelay(failures++));
      }
    }
    this.dropConnection();
  }

  /** A block in progress that lacks `key` is ended; an idle loop wakes. */
  notice(key: string): void {
    if (!this.blocking?.has(key)) this.nudge();
  }

  stop(): void {
    for (const timer of this.foreign.values()) clearTimeout(timer);
    this.foreign.clear();
    this.wakeIdle?.();
    this.endPause?.();
    this.dropConnection();
  }

  private connection(): Redis {
    // stop() may have come while the loop awaited: never open a connection after it.
    if (this.reader.stopped) throw new Error('Connection is closed.');
    this.conn ??= this.target.connect({
      commandTimeout: (this.target.blockSeconds ?? this.reader.opts.blockSeconds) * 1000 + 5000,
      enableAutoPipelining: false,
      retryStrategy: () => null,
      lazyConnect: false,
    });
    return this.conn;
  }

  private dropConnection(): void {
    const conn = this.conn;
    this.conn = undefined;
    if (conn) this.target.release(conn);
  }

  /** Pops everything available (within budgets) before blocking again. */
  private async drain(conn: Redis): Promise<void> {
    const { reader } = this;
    for (;;) {
      if (reader.stopped) return;
      const { keys, budgets } = reader.budgets(this.target, this.foreign);
      if (keys.length === 0) return;
      await this.restoreInflight(conn, keys);
      let more = false;
      for (const entry of await drainScript(conn, keys, budgets)) {
        if ('type' in entry) {
          this.setForeign(keys[entry.index]!, entry.type);
          continue;
        }
        const { index, popped } = entry;
        const key = keys[index]!;
        for (let i = 1; i + 1 < popped.length; i += 2)
          this.deliver(key, popped[i]!, popped[i + 1]!);
        if ((popped.length - 1) / 2 >= budgets[index]!) more = true;
      }
      // Keys looked at again that read fine are queues again: a later trouble starts afresh.
      if (this.recheckDelay.size > 0) {
        for (const key of keys) if (!this.foreign.has(key)) this.recheckDelay.delete(key);
      }
      if (!more) return;
    }
  }

  /**
   * Once per normal channel's key: give back what a crashed channels_redis receiver left in
   * `$inflight`. (Process-local keys are never read by channels_redis for this client prefix.)
   */
  private async restoreInflight(conn: Redis, keys: string[]): Promise<void> {
    for (const key of keys) {
      if (this.restored.has(key) || key.endsWith('!')) continue;
      await this.target.restoreInflight(conn, key, this.reader.opts.restoreTtlMs);
      this.restored.add(key);
    }
  }

  private deliver(key: string, member: Buffer, score: Buffer | string): void {
    if (this.reader.stopped) return;
    this.reader.hooks.deliver(key, member, Number.parseFloat(score.toString()), this.target.index);
  }

  /**
   * Makes the loop read the demand again: a block in progress is ended through the wake key
   * (once per block), an idle loop wakes. A loop between the two reads the demand anyway.
   */
  private nudge(): void {
    const target = this.blocking;
    if (target === undefined) {
      this.wakeIdle?.();
      return;
    }
    if (this.woken === target) return;
    this.woken = target;
    this.target.wake().catch(() => {
      // The command connection is down; the blocking one will notice too (or its block ends).
      if (this.woken === target) this.woken = undefined;
    });
  }

  /** Reports a key that is not a sorted set and leaves it out of the reads for a while. */
  private setForeign(key: string, type: string): void {
    if (this.foreign.has(key) || this.reader.stopped) return;
    const delay = this.recheckDelay.get(key) ?? FOREIGN_RECHECK_MS;
    this.recheckDelay.set(key, Math.min(delay * 2, FOREIGN_RECHECK_MAX_MS));
    const timer = setTimeout(() => {
      this.foreign.delete(key);
      this.nudge();
    }, delay);
    this.foreign.set(key, timer);
    this.reader.hooks.report(
      new Error(
        `${key} on ${this.target.label} is a ${type}, not a channel queue; not reading it (looking again in ${delay / 1000} s)`,
      ),
      'reader',
    );
  }

  /**
   * Waits for demand; resolves false when the loop should end instead: its target retires
   * when idle (a cluster slot nobody reads any more) and nothing came for IDLE_RETIRE_MS.
   */
  private idle(): Promise<boolean> {
    if (!this.target.retiresWhenIdle) return this.wait(undefined);
    // Marked in the timer itself: a notice() from then on starts a new loop, never this one.
    return this.wait(IDLE_RETIRE_MS, () => {
      this.retired = true;
    });
  }

  /** Resolves true when nudged, false after `ms` (never, without), calling `onTimeout` first. */
  private wait(ms: number | undefined, onTimeout?: () => void): Promise<boolean> {
    return new Promise((resolve) => {
      const timer =
        ms === undefined
          ? undefined
          : setTimeout(() => {
              this.wakeIdle = undefined;
              onTimeout?.();
              resolve(false);
            }, ms);
      this.wakeIdle = () => {
        clearTimeout(timer);
        this.wakeIdle = undefined;
        resolve(true);
      };
    });
  }

  /**
   * Waits `ms`, or less if the target says trying again is worth it now (the shard's command
   * connection is back, Sentinel announced a new master), or the reader stops.
   */
  private async pause(ms: number): Promise<void> {
    if (this.reader.stopped) return;
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      unsubscribe = this.target.onBack(resolve);
      this.endPause = resolve;
    });
    clearTimeout(timer);
    unsubscribe?.();
    this.endPause = undefined;
  }
}
