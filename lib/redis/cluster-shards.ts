/**
 * A shard set on one Redis Cluster (shard-set.ts): the cluster's slots place every key, under
 * the same names and bytes as on standalone hosts (no hash tags added to channel or group keys).
 *
 * - Commands go through one ioredis `Cluster`, auto-pipelined: per node, everything of a tick
 *   is one write, whatever slots it touches; script calls, SPUBLISH and the layer's single-key
 *   commands are written straight to their node's connection instead, one write per node and
 *   turn, a non-script command after the scripts before it (cluster-writes.ts). The layer's
 *   "shard index" here is the key's slot, so every multi-key script call (a tick's sends, a
 *   group send's chunk, a drain) holds keys of one slot only: never CROSSSLOT.
 * - A command lost with its connection is never sent again behind the caller's back
 *   (`retryDelayOnFailover: 0`): the caller gets a ConnectionError saying it may or may not have
 *   run, as on a standalone shard. Redirections (MOVED, ASK, TRYAGAIN while a slot migrates,
 *   CLUSTERDOWN while a master is replaced) are followed by ioredis for up to
 *   REDIRECTIONS × TRY_AGAIN_MS before a command fails.
 * - The reader reads a slot on a blocking connection of its own to the slot's master, for up to
 *   MAX_BLOCKING slots at once (a process's own `…!` queue is one key: one slot; normal channels
 *   add one each); past that, a slot is polled every POLL_MS through the command client. A
 *   slot's loop ends after a while without demand, closing its connection. Its wake key carries
 *   the hash tag of the first key it read, so a wake lands in that slot.
 * - Events: the cluster is shard 0 of `hosts`. 'disconnect' when a master's connection that
 *   was up drops, 'reconnect' once every such master is back or replaced; 'failover' when a
 *   refreshed slot map shows a down master's slots served by another node. While a master is
 *   down the slot map is refreshed every REFRESH_MS, so a promotion is seen promptly.
 * - Pub/Sub (`pubsub` option, the Pub/Sub layer: pubsub-cluster.ts): sharded subscriptions are
 *   ioredis's (`shardedSubscribers`); it resubscribes them after a failover by itself, but not
 *   after a slot move (Redis drops them with a `sunsubscribe` push): that push refreshes the
 *   slot map at once, which makes ioredis subscribe again on the slot's new owner. The masters'
 *   command connections are opened eagerly, so a layer that only subscribes sees their drops.
 */
import { EventEmitter } from 'node:events';
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { ConnectionError, errorMessage } from '../errors.ts';
import { deadline } from '../deadline.ts';
import { NodeWrites } from './cluster-writes.ts';
import { explainFailure } from './failures.ts';
import { nextReady } from './ready.ts';
import { ERROR_TEXT } from './ioredis-internals.ts';
import { serverHealth, type ShardHealth } from './health.ts';
import { useHelloReadyCheck } from './hello.ts';
import type { ClusterSpec } from './hosts.ts';
import type { ReadTarget, TargetsOf } from './reader.ts';
import { giveBackScript, SCRIPTS } from './script-calls.ts';
import { defineScripts, scriptCommand } from './scripts.ts';
import type { MasterChange, ShardSet, ShardSetEvents } from './shard-set.ts';
import { reconnectDelay } from './shard.ts';
import { wake } from './wake.ts';

const SLOTS = 16384;
/** Most slots read on blocking connections of their own; others are polled. */
const MAX_BLOCKING = 32;
/** How often a slot without a blocking connection of its own is read. */
const POLL_MS = 50;
/** How often the slot map is refreshed while a master is down (promotion takes seconds). */
const REFRESH_MS = 100;
/** Redirections ioredis follows per command, and the wait before retrying TRYAGAIN/CLUSTERDOWN. */
const REDIRECTIONS = 64;
const TRY_AGAIN_MS = 50;
/** Longest wait between reader retries on a cluster: slots move and masters are replaced fast. */
const MAX_RETRY_MS = 200;
/**
 * A reader's block on a cluster. Redis redirects a client blocked on a slot that moved away only
 * from its cron (100 ms to ~1 s later, as measured); a short block bounds how long a reader in a
 * process that did not see the move itself keeps waiting on the old owner.
 */
const BLOCK_SECONDS = 1;
/**
 * How long the slot map is refreshed after a slot's sharded subscriptions were dropped, until
 * it shows the slot's new owner (the node asked may not have heard of the move yet).
 */
const MOVE_WATCH_MS = 10_000;

export interface ClusterShardsOptions {
  commandTimeoutMs: number;
  /** The Pub/Sub layer's kind of Pub/Sub (absent for the core layer). */
  pubsub?: 'sharded' | 'global';
}

const noop = (): void => {};

const address = (nodeKey: string): { host: string; port: number } => {
  const colon = nodeKey.lastIndexOf(':');
  return { host: nodeKey.slice(0, colon), port: Number(nodeKey.slice(colon + 1)) };
};

const keyOf = (redis: Redis): string => `${redis.options.host}:${redis.options.port}`;

export class ClusterShards implements ShardSet {
  readonly size = SLOTS;
  readonly placesKeys = true;
  readonly client: Cluster;
  /** What every node connection needs (credentials, TLS), for the reader's own connections. */
  private readonly nodeOptions: RedisOptions;
  private readonly commandTimeoutMs: number;
  /** 'connectionError' for the layer's trouble report (BaseLayer). */
  private readonly trouble = new EventEmitter();
  private readonly troubleReport: { reset(): void };
  /** Masters whose connection was up and dropped, not back or replaced yet. */
  private readonly down = new Set<string>();
  /** Per node: a slot it served at the last refresh (to see who serves it after a failover). */
  private servedSlot = new Map<string, number>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private readonly targets = new Map<number, ReadTarget>();
  /**
   * Slot → the node a reader's MOVED named: where its next connection goes, until the slot map
   * is refreshed (the command client's map learns of a move only from its own commands).
   */
  private readonly moved = new Map<number, string>();
  /** Open blocking connections of the reader: the slot each reads, and the node it went to. */
  private readonly blocking = new Map<Redis, { slot: number; node: string }>();
  private readyWait: Promise<void> | undefined;
  /** Script calls, SPUBLISH and single-key commands, straight to their node (cluster-writes.ts). */
  readonly writes: NodeWrites;
  /** Slots whose sharded subscriptions their old owner dropped: that owner, and since when. */
  private readonly movedAway = new Map<number, { node: string; since: number }>();
  /** Pub/Sub: masters' command connections are opened as soon as they are known. */
  private readonly watchMasters: boolean;
  private closed = false;

  constructor(
    spec: ClusterSpec,
    opts: ClusterShardsOptions,
    private readonly events: ShardSetEvents,
  ) {
    this.commandTimeoutMs = opts.commandTimeoutMs;
    this.watchMasters = opts.pubsub !== undefined;
    this.nodeOptions = { ...spec.options.redisOptions };
    this.client = new Cluster(spec.startupNodes, {
      ...spec.options,
      lazyConnect: true,
      enableAutoPipelining: true,
      // ioredis's auto-pipeline files a command under the slot of its first argument, which for
      // EVALSHA is the key count, not a key: a script's pipeline then mixes slots and fails.
      // Scripts are written at once instead (each to its node, in the same tick: one round trip).
      // SPUBLISH/PUBLISH too: an auto-pipeline's MOVED is not followed (the caller got the raw
      // `MOVED …` during a failover or a slot move; one command alone is redirected).
      autoPipeliningIgnoredCommands: [...SCRIPTS.map(scriptCommand), 'spublish', 'publish'],
      // Node connections are made on first use: a command meeting one still connecting waits
      // in its queue (bounded by commandTimeout). run() waits for a cluster that is not ready.
      enableOfflineQueue: true,
      scaleReads: 'master',
      retryDelayOnFailover: 0,
      maxRedirections: REDIRECTIONS,
      retryDelayOnTryAgain: TRY_AGAIN_MS,
      retryDelayOnClusterDown: TRY_AGAIN_MS,
      // Without it an SSUBSCRIBE never settles (docs/cluster.md (b)).
      shardedSubscribers: opts.pubsub === 'sharded',
      redisOptions: {
        connectionName: 'chanlayer:command',
        disconnectTimeout: 100,
        ...this.nodeOptions,
        commandTimeout: opts.commandTimeoutMs,
      },
    });
    defineScripts(this.client as unknown as Redis, SCRIPTS);
    this.writes = new NodeWrites(this.client);
    this.troubleReport = events.trouble({
      client: this.client,
      on: (event, listener) => this.trouble.on(event, listener),
    });
    // Without listeners ioredis prints these; each is passed on as connection trouble.
    this.client.on('error', (err: Error) => this.connectionError(err));
    this.client.on('node error', (err: Error, key: string) => this.connectionError(err, key));
    // Sharded subscribers' errors: ioredis names this event without a space.
    this.client.on('nodeError', (err: Error, key: string) => this.subscriberError(err, key));
    this.client.on('+node', (redis: Redis) => this.watchNode(redis));
    this.client.on('refresh', () => this.refreshed());
  }

  index(_name: string, key: string): number {
    return calculateSlot(key);
  }

  everywhere(key: string): readonly number[] {
    return [calculateSlot(key)];
  }

  run<T>(index: number, work: (client: Redis) => Promise<T>, command?: string): Promise<T> {
    const { client } = this.writes;
    if (this.client.status === 'ready') {
      try {
        return work(client).catch((err: unknown) => {
          throw this.failure(index, err, command);
        });
      } catch (err) {
        return Promise.reject(this.failure(index, err, command));
      }
    }
    return this.whenReady().then(
      () => work(client),
      (err: unknown) => {
        throw this.failure(index, err, command);
      },
    );
  }

  failure(index: number, err: unknown, command = 'the command'): unknown {
    const closed = this.events.closedError();
    if (closed) return closed;
    if (/^(CLUSTERDOWN|MOVED|Too many Cluster)|Connection is closed/.test(errorMessage(err)))
      this.refreshSoon();
    return explainFailure(err, {
      where: `Redis Cluster (slot ${index})`,
      index: 0,
      commandTimeoutMs: this.commandTimeoutMs,
      command,
      unreachable: (detail) => this.unreachable(detail),
    });
  }

  /** Whether a master whose connection was up is down, not back or replaced yet. */
  isDown(): boolean {
    return this.down.size > 0;
  }

  async deleteMatching(pattern: string): Promise<void> {
    await this.whenReady();
    const client = this.client as unknown as Redis;
    await Promise.all(
      this.client.nodes('master').map(async (node) => {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          // One key per UNLINK: a node's keys are in many slots (auto-pipelined anyway).
          await Promise.all(keys.map((key) => client.unlink(key)));
        } while (cursor !== '0');
      }),
    );
  }

  /** Every master of the cluster (as shard 0, named by its address). */
  async health(timeoutMs: number): Promise<ShardHealth[]> {
    try {
      await this.whenReady();
    } catch (err) {
      return [
        {
          shard: 0,
          id: 'cluster',
          ok: false,
          latencyMs: undefined,
          role: undefined,
          error: errorMessage(err),
        },
      ];
    }
    return Promise.all(
      this.client
        .nodes('master')
        .map((node) => serverHealth({ shard: 0, id: keyOf(node) }, async () => node, timeoutMs)),
    );
  }

  readTargets(wakeKey: string): TargetsOf {
    // Every receive notices its key, and a process's local channels all share one: its slot is
    // worked out once, not per receive (a target lives as long as the shard set).
    let last: { key: string; targets: readonly ReadTarget[] } | undefined;
    return (key) => {
      if (last?.key === key) return last.targets;
      const slot = calculateSlot(key);
      let target = this.targets.get(slot);
      if (target === undefined) {
        // The wake key's hash tag is this key, so it hashes to the same slot (channel names and
        // the prefix hold no braces: config.ts refuses a prefix with them on a cluster).
        target = this.slotTarget(slot, `${wakeKey}:{${key}}`);
        this.targets.set(slot, target);
      }
      last = { key, targets: [target] };
      return last.targets;
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.refreshTimer);
    for (const conn of this.blocking.keys()) conn.disconnect();
    this.blocking.clear();
    this.targets.clear();
    this.client.disconnect();
    this.trouble.removeAllListeners();
  }

  /** Resolves once the cluster is ready (connecting it if lazy), within commandTimeoutMs. */
  whenReady(): Promise<void> {
    const { client } = this;
    if (client.status === 'ready') return Promise.resolve();
    if (client.status === 'end' || this.closed)
      return Promise.reject(new Error('Connection is closed.'));
    if (this.readyWait === undefined) {
      this.readyWait = nextReady(client).promise.finally(() => {
        this.readyWait = undefined;
      });
      if (client.status === 'wait') client.connect().catch(() => {});
    }
    return deadline(this.readyWait, this.commandTimeoutMs, () =>
      this.unreachable(`not ready within ${this.commandTimeoutMs} ms`),
    );
  }

  unreachable(detail: string, err?: unknown): ConnectionError {
    const reason = err === undefined ? '' : `: ${errorMessage(err)}`;
    return new ConnectionError(`Redis Cluster is not reachable: ${detail}${reason}`, 0, {
      cause: err,
    });
  }

  private connectionError(err: Error, node?: string): void {
    if (this.closed) return;
    this.trouble.emit(
      'connectionError',
      this.unreachable(node === undefined ? 'cluster' : `node ${node}`, err),
    );
  }

  /**
   * A sharded subscriber's error: Redis dropped the subscriptions of a slot that moved (the
   * slot map is refreshed now: ioredis then subscribes on the new owner, docs/cluster.md (b)),
   * or connection trouble (while a master is down ioredis retries every ~8 ms: the layer's
   * trouble report says it once per outage).
   */
  private subscriberError(err: Error, node: string): void {
    if (this.closed) return;
    const at = err.message.indexOf(ERROR_TEXT.slotUnsubscribed);
    if (at >= 0) {
      const channel = err.message.slice(at + ERROR_TEXT.slotUnsubscribed.length).split(',')[0]!;
      this.movedAway.set(calculateSlot(channel), { node, since: Date.now() });
      this.client.refreshSlotsCache();
      this.refreshSoon();
      return;
    }
    this.connectionError(err, node);
  }

  /** A node connection of the command client: its drops and returns are the layer's events. */
  private watchNode(redis: Redis): void {
    useHelloReadyCheck(redis);
    const key = keyOf(redis);
    let ready = false;
    redis.on('ready', () => {
      ready = true;
      if (this.down.delete(key)) this.upAgain();
    });
    redis.on('close', () => {
      if (!ready || this.closed || this.events.closedError()) return;
      ready = false;
      const first = this.down.size === 0;
      this.down.add(key);
      if (first) this.events.disconnect(0);
      this.refreshSoon();
    });
  }

  private upAgain(): void {
    if (this.down.size > 0 || this.events.closedError()) return;
    this.troubleReport.reset();
    this.events.reconnect(0);
  }

  /**
   * Refreshes the slot map soon, and again every REFRESH_MS while a master is down or a slot
   * whose subscriptions were dropped is not seen on its new owner yet.
   */
  private refreshSoon(): void {
    if (this.refreshTimer !== undefined || this.closed) return;
    this.refreshTimer = setTimeout(() => {
      this.client.refreshSlotsCache(() => {
        this.refreshTimer = undefined;
        if (this.down.size > 0 || this.movedAway.size > 0) this.refreshSoon();
      });
    }, REFRESH_MS);
  }

  /** A new slot map: a down master whose slots another node serves now was failed over. */
  private refreshed(): void {
    const { slots } = this.client;
    this.moved.clear();
    for (const key of [...this.down]) {
      const slot = this.servedSlot.get(key);
      const now = slot === undefined ? undefined : slots[slot]?.[0];
      if (now !== undefined && now !== key) {
        this.down.delete(key);
        if (!this.events.closedError()) {
          const change: MasterChange = { from: address(key), to: address(now) };
          this.events.failover(0, change);
        }
      }
    }
    const served = new Map<string, number>();
    slots.forEach((nodes, slot) => {
      const master = nodes?.[0];
      if (master !== undefined && !served.has(master)) served.set(master, slot);
    });
    // A down node no longer in the map keeps its last known slot.
    for (const key of this.down) {
      const slot = this.servedSlot.get(key);
      if (slot !== undefined && !served.has(key)) served.set(key, slot);
    }
    this.servedSlot = served;
    const now = Date.now();
    for (const [slot, { node, since }] of this.movedAway) {
      const owner = slots[slot]?.[0];
      if ((owner !== undefined && owner !== node) || now - since > MOVE_WATCH_MS)
        this.movedAway.delete(slot);
    }
    if (this.watchMasters) {
      for (const node of this.client.nodes('master')) {
        if (node.status === 'wait') node.connect().catch(noop);
      }
    }
    // A reader blocked on a slot's old owner is redirected by Redis only from its cron (we saw
    // up to 600 ms): one whose slot this process now knows moved is cut off, so it reconnects.
    for (const [conn, { slot, node }] of this.blocking) {
      const owner = slots[slot]?.[0];
      if (owner !== undefined && owner !== node) conn.disconnect();
    }
    this.upAgain();
  }

  /** One slot as the reader sees it. */
  private slotTarget(slot: number, wakeKey: string): ReadTarget {
    const client = this.client as unknown as Redis;
    return {
      index: slot,
      label: `cluster slot ${slot}`,
      wakeKey,
      owns: (key) => calculateSlot(key) === slot,
      retiresWhenIdle: true,
      blockSeconds: BLOCK_SECONDS,
      ready: () => this.whenReady(),
      connect: (options) => {
        if (this.blocking.size >= MAX_BLOCKING) return client;
        const owner = this.moved.get(slot) ?? this.client.slots[slot]?.[0];
        if (owner === undefined) throw this.unreachable(`no master known for slot ${slot}`);
        const conn = new Redis({
          ...this.nodeOptions,
          ...address(owner),
          connectionName: 'chanlayer:blocking',
          disconnectTimeout: 100,
          ...options,
        });
        useHelloReadyCheck(conn);
        // Failures reach the loop as rejected commands; this only keeps ioredis quiet.
        conn.on('error', () => {});
        this.blocking.set(conn, { slot, node: owner });
        return conn;
      },
      release: (conn) => {
        if (conn === client) return;
        this.blocking.delete(conn);
        conn.disconnect();
      },
      canBlock: (conn) => conn !== client,
      pollMs: POLL_MS,
      wake: () => wake(client, wakeKey),
      restoreInflight: (_conn, key, ttlMs) => this.restoreInflight(key, ttlMs),
      retryDelay: (attempt) => Math.min(reconnectDelay(attempt), MAX_RETRY_MS),
      onBack: (listener) => {
        this.client.on('refresh', listener);
        return () => this.client.off('refresh', listener);
      },
      failed: (err) => {
        const message = errorMessage(err);
        const moved = /^MOVED \d+ (\S+)/.exec(message);
        if (moved) this.moved.set(slot, moved[1]!);
        if (!/^WRONGTYPE/.test(message)) this.refreshSoon();
      },
    };
  }

  /**
   * Not atomic, unlike restore_inflight.lua (the queue and its `$inflight` backup are in
   * different slots): the backup is read and deleted in one MULTI, then given back to the queue.
   * A process dying between the two loses those messages (docs/cluster.md). channels_redis
   * cannot run on a cluster, so a backup only exists if one was carried over from standalone.
   */
  private async restoreInflight(key: string, ttlMs: number): Promise<number> {
    const client = this.client as unknown as Redis;
    const inflight = `${key}$inflight`;
    const replies = await client
      .multi()
      .zrangeBuffer(inflight, 0, -1, 'WITHSCORES')
      .del(inflight)
      .exec();
    const backedUp = (replies?.[0]?.[1] ?? []) as Buffer[];
    if (backedUp.length === 0) return 0;
    const messages: Array<{ score: number; member: Buffer }> = [];
    for (let i = 0; i + 1 < backedUp.length; i += 2) {
      messages.push({ member: backedUp[i]!, score: Number(backedUp[i + 1]!.toString()) });
    }
    await giveBackScript(client, { queue: key, ttlMs }, messages);
    return messages.length;
  }
}
