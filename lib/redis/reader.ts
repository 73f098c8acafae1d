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
 * over them. When a receiver starts waiting on a key that a block in progress lacks, the block
 * is interrupted with `CLIENT UNBLOCK <id>` sent on the shard's command connection — a new
 * receiver never waits out the block timeout (channels_redis waits up to 5 s per shard in turn).
 * Keys leave lazily: a key nobody waits on any more is simply not part of the next block.
 *
 * A process-local queue (key ending in `!`) is read on every shard, since a channels_redis
 * sender places those by the full channel name (upstream #221). A normal channel's queue is read
 * on every shard too (channels_redis senders round-robin them), and a channels_redis receiver's
 * leftover `$inflight` backup is put back into it once, before the key is first read here.
 *
 * The blocking connection never reconnects by itself (`retryStrategy: null`): a lost connection
 * rejects the pending command at once (ioredis would otherwise resend or silently drop it), and
 * the loop opens a fresh connection after a backoff — also learning the new CLIENT ID. Its
 * command timeout is longer than the block (upstream #422, ioredis #1888), so a dead socket is
 * noticed. No timer or socket survives `stop()`.
 */
import type { Redis } from 'ioredis';
import { ConnectionError, errorMessage, RedisTooOld } from '../errors.ts';
import { runScript } from './scripts.ts';
import type { Shard } from './shard.ts';

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
  budgets(exclude: ReadonlySet<string>): { keys: string[]; budgets: number[] } {
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

/** Entry of a drain.lua reply: `[keyIndex, member, score, member, score, …]`. */
type DrainEntry = [number, ...Buffer[]];

/** Trouble the layer already reports through 'disconnect' (or that passes on its own). */
const CONNECTION_TROUBLE =
  /Connection is closed|Command timed out|Stream isn't writeable|not reachable|max retries per request|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|^LOADING|^READONLY|^MASTERDOWN/;

function isConnectionError(err: unknown): boolean {
  return err instanceof ConnectionError || CONNECTION_TROUBLE.test(errorMessage(err));
}

class ShardLoop {
  private conn: Redis | undefined;
  private id: number | undefined;
  /** Keys of the BZPOPMIN in flight, if one is. */
  private blocking: Set<string> | undefined;
  private unblocking = false;
  private unblockTimer: NodeJS.Timeout | undefined;
  /** Wakes a loop that has nothing to watch. */
  private wakeIdle: (() => void) | undefined;
  /** Ends a backoff early (stop only: a new receiver must not hurry reconnect attempts). */
  private endPause: (() => void) | undefined;
  private readonly restored = new Set<string>();
  /** Keys on this shard that hold something other than a sorted set (not ours): not read. */
  private readonly foreign = new Set<string>();

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
        if (this.id === undefined) this.id = Number(await conn.client('ID'));
        await this.drain(conn);
        if (reader.stopped) break;
        const { keys } = reader.budgets(this.foreign);
        if (keys.length === 0) {
          await this.idle();
          continue;
        }
        this.blocking = new Set(keys);
        const popped = await conn.bzpopminBuffer(...keys, reader.opts.blockSeconds);
        this.blocking = undefined;
        if (popped) this.deliver(popped[0].toString(), popped[1], popped[2]);
        failures = 0;
        lastReported = undefined;
      } catch (err) {
        this.blocking = undefined;
        if (reader.stopped) break;
        if (/WRONGTYPE/.test(errorMessage(err)) && (await this.findForeignKeys())) continue;
        this.dropConnection();
        if (err instanceof RedisTooOld) {
          reader.hooks.report(err, `shard ${shard.index} reader stopped`);
          return;
        }
        // Connection trouble is reported by the layer's 'disconnect' event; anything else
        // (a script error, say) is worth a word — once, not at every retry.
        const message = errorMessage(err);
        if (!isConnectionError(err) && message !== lastReported) {
          lastReported = message;
          reader.hooks.report(err, `reader on shard ${shard.index}`);
        }
        await this.pause(shard.retryDelay(failures++));
      }
    }
  }

  /** A block in progress that lacks `key` is interrupted; an idle loop wakes. */
  notice(key: string): void {
    if (this.blocking === undefined) {
      this.wakeIdle?.();
      return;
    }
    if (!this.blocking.has(key)) this.interrupt();
  }

  stop(): void {
    clearTimeout(this.unblockTimer);
    this.unblockTimer = undefined;
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
    this.id = undefined;
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
      const reply = (await runScript(conn, 'drain', keys, budgets, {
        buffers: true,
      })) as DrainEntry[];
      let more = false;
      for (const [index, ...pairs] of reply) {
        const key = keys[index - 1]!;
        for (let i = 0; i + 1 < pairs.length; i += 2) this.deliver(key, pairs[i]!, pairs[i + 1]!);
        if (pairs.length / 2 >= budgets[index - 1]!) more = true;
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
      await runScript(
        conn,
        'restore_inflight',
        [key, `${key}$inflight`],
        [this.reader.opts.restoreTtlMs],
      );
      this.restored.add(key);
    }
  }

  private deliver(key: string, member: Buffer, score: Buffer | string): void {
    if (this.reader.stopped) return;
    this.reader.hooks.deliver(key, member, Number.parseFloat(score.toString()), this.shard.index);
  }

  /**
   * CLIENT UNBLOCK on the command connection. A 0 reply while our BZPOPMIN is still pending
   * means the server has not seen it yet: try again shortly, until it is unblocked or answered.
   */
  private interrupt(): void {
    if (this.unblocking || this.blocking === undefined || this.id === undefined) return;
    const target = this.blocking;
    const id = this.id;
    this.unblocking = true;
    const attempt = (n: number): void => {
      this.shard.client.client('UNBLOCK', id).then(
        (unblocked) => {
          if (unblocked === 1 || this.blocking !== target || this.reader.stopped) {
            this.unblocking = false;
            return;
          }
          this.unblockTimer = setTimeout(
            () => {
              this.unblockTimer = undefined;
              attempt(n + 1);
            },
            Math.min(2 ** n, 50),
          );
        },
        () => {
          // The command connection is down; the blocking one will notice too.
          this.unblocking = false;
        },
      );
    };
    attempt(0);
  }

  /**
   * After a WRONGTYPE error: finds the watched keys on this shard that are not sorted sets,
   * reports and stops reading them. Returns whether any was found.
   */
  private async findForeignKeys(): Promise<boolean> {
    const { keys } = this.reader.budgets(this.foreign);
    let found = false;
    try {
      const types = await Promise.all(keys.map((key) => this.shard.client.type(key)));
      keys.forEach((key, i) => {
        if (types[i] === 'zset' || types[i] === 'none') return;
        found = true;
        this.foreign.add(key);
        this.reader.hooks.report(
          new Error(
            `${key} on shard ${this.shard.index} is a ${types[i]}, not a channel queue; not reading it`,
          ),
          'reader',
        );
      });
    } catch {
      // Connection trouble: the loop backs off as usual.
    }
    return found;
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
