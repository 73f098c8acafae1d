/**
 * The core layer's reader loop: one per layer instance, one dedicated blocking connection per
 * shard, all shards listened to at once.
 *
 * What to read comes from the hooks' `demand()`: the queue keys that have waiting receivers in
 * this process, each with a budget (how many receivers wait on channels of that key). A message
 * leaves Redis only when a receiver here wants one, so the queue in Redis keeps its capacity
 * (senders still get ChannelFull from a slow consumer) and its expiry, and a normal channel —
 * a work queue shared with other processes — is never hoarded by one of them.
 *
 * Each shard loop repeats: drain the demanded keys with `drain.lua` (non-blocking ZPOPMIN, up to
 * each budget, again while budgets remain and messages come), then block in `BZPOPMIN k1 … kn`
 * over them and the reader's own wake key (wake.ts). When a receiver starts waiting on a key that
 * a block in progress lacks, the shard's command connection adds a member to the wake key
 * (wake.lua), which ends the block; the loop drains and blocks again over the keys demanded
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
import type { Redis } from 'ioredis';
import { ConnectionError, errorMessage, RedisTooOld } from '../errors.ts';
import { drainScript, restoreInflightScript } from './script-calls.ts';
import type { Shard } from './shard.ts';
import { ERROR_TEXT } from './ioredis-internals.ts';
import { wake } from './wake.ts';

/** First wait before a foreign key (not a sorted set) is read again; doubles up to the max. */
const FOREIGN_RECHECK_MS = 1000;
const FOREIGN_RECHECK_MAX_MS = 60_000;

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
  /** This reader's wake key (wake.ts `wakeKey`), part of every block. */
  wakeKey: string;
}

export class Reader {
  private readonly loops: ShardLoop[];
  private readonly abort = new AbortController();
  private started = false;

  constructor(
    shards: readonly Shard[],
    readonly hooks: ReaderHooks,
    readonly opts: ReaderOptions,
  ) {
    this.loops = shards.map((shard) => new ShardLoop(this, shard));
  }

  get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Starts every shard loop (idempotent). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    for (const loop of this.loops) void loop.run();
  }

  /**
   * A receiver started waiting on `key` (starts the loops on first use). A block in progress
   * that does not include the key is interrupted so the next one does; an idle loop wakes up.
   */
  notice(key: string): void {
    if (this.stopped) return;
    this.start();
    for (const loop of this.loops) loop.notice(key);
  }

  /** Stops every loop and closes every blocking connection; pending commands reject at once. */
  stop(): void {
    if (this.stopped) return;
    this.abort.abort();
    for (const loop of this.loops) loop.stop();
  }

  /** Keys worth reading now with their budgets (capped at `batch`). */
  budgets(exclude: { has(key: string): boolean }): { keys: string[]; budgets: number[] } {
    const keys: string[] = [];
    const budgets: number[] = [];
    for (const [key, budget] of this.hooks.demand()) {
      if (budget <= 0 || exclude.has(key)) continue;
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
  /**
   * Keys on this shard found holding something other than a sorted set (not ours): not read
   * until their timer fires and they are tried again.
   */
  private readonly foreign = new Map<string, NodeJS.Timeout>();
  /** The wait before the next look at a key should it be foreign again; dropped once it reads. */
  private readonly recheckDelay = new Map<string, number>();

  constructor(
    private readonly reader: Reader,
    private readonly shard: Shard,
  ) {}

  async run(): Promise<void> {
    const { reader, shard } = this;
    let failures = 0;
    let lastReported: string | undefined;
    while (!reader.stopped) {
      try {
        await shard.whenReady();
        await shard.ensureVersion();
        const conn = this.connection();
        await this.drain(conn);
        if (reader.stopped) break;
        const { keys } = reader.budgets(this.foreign);
        if (keys.length === 0) {
          await this.idle();
          continue;
        }
        const { wakeKey, blockSeconds } = reader.opts;
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
        if (err instanceof RedisTooOld) {
          reader.hooks.report(err, `shard ${shard.index} reader stopped`);
          return;
        }
        // Connection trouble is reported by the layer's 'disconnect' event; anything else
        // (a script error, say) is worth a word — once, not at every retry.
        if (!wrongType && !isConnectionError(err) && message !== lastReported) {
          lastReported = message;
          reader.hooks.report(err, `reader on shard ${shard.index}`);
        }
        await this.pause(shard.retryDelay(failures++));
      }
    }
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
    this.conn ??= this.shard.connect('blocking', {
      commandTimeout: this.reader.opts.blockSeconds * 1000 + 5000,
      enableAutoPipelining: false,
      retryStrategy: () => null,
      lazyConnect: false,
    });
    return this.conn;
  }

  private dropConnection(): void {
    const conn = this.conn;
    this.conn = undefined;
    if (conn) this.shard.release(conn);
  }

  /** Pops everything available (within budgets) before blocking again. */
  private async drain(conn: Redis): Promise<void> {
    const { reader } = this;
    for (;;) {
      if (reader.stopped) return;
      const { keys, budgets } = reader.budgets(this.foreign);
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
      await restoreInflightScript(conn, key, this.reader.opts.restoreTtlMs);
      this.restored.add(key);
    }
  }

  private deliver(key: string, member: Buffer, score: Buffer | string): void {
    if (this.reader.stopped) return;
    this.reader.hooks.deliver(key, member, Number.parseFloat(score.toString()), this.shard.index);
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
    wake(this.shard.client, this.reader.opts.wakeKey).catch(() => {
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
        `${key} on shard ${this.shard.index} is a ${type}, not a channel queue; not reading it (looking again in ${delay / 1000} s)`,
      ),
      'reader',
    );
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      this.wakeIdle = () => {
        this.wakeIdle = undefined;
        resolve();
      };
    });
  }

  /**
   * Waits `ms`, or less if the shard's command connection comes back up, Sentinel announces a
   * new master for it (failover), or the reader stops.
   */
  private async pause(ms: number): Promise<void> {
    if (this.reader.stopped) return;
    let timer: NodeJS.Timeout | undefined;
    let onUp: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      onUp = resolve;
      this.shard.on('up', onUp);
      this.shard.on('switch', onUp);
      this.endPause = resolve;
    });
    clearTimeout(timer);
    this.shard.off('up', onUp!);
    this.shard.off('switch', onUp!);
    this.endPause = undefined;
  }
}
