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
 *
 * This file is the public API; each operation continues in one place (docs/architecture.md):
 * send → redis/sends.ts, receive → redis/receiver.ts (→ reader.ts), groups → redis/groups.ts,
 * the hosts and their connections → redis/shard-set.ts.
 */
import type { LayerOptions } from '../config.ts';
import { ChannelFull, LayerClosed } from '../errors.ts';
import {
  assertChannelName,
  assertGroupName,
  assertOwnChannel,
  isProcessLocal,
  newProcessChannel,
  nonLocalName,
  uuidHex,
} from '../names.ts';
import { Groups } from '../redis/groups.ts';
import { healthReport, type HealthReport } from '../redis/health.ts';
import { Liveness, REGISTRY_NAME } from '../redis/liveness.ts';
import { Receiver } from '../redis/receiver.ts';
import { prefixPattern } from '../redis/scan.ts';
import { SendBatcher } from '../redis/sends.ts';
import { nextScore } from '../redis/send-time.ts';
import { GROUP_SEND, SEND, SEND_MANY } from '../redis/script-calls.ts';
import { scriptCommand } from '../redis/scripts.ts';
import { createShardSet, type ShardSet } from '../redis/shard-set.ts';
import { assertMessage, CHANNEL_FIELD } from '../serde/codec.ts';
import type { ChannelLayer, Message, ReceiveOptions } from '../types.ts';
import { BaseLayer, type CounterName, type LayerObserver } from './base.ts';

export type RedisLayerOptions = LayerOptions;

export class RedisChannelLayer<M extends Message = Message>
  extends BaseLayer
  implements ChannelLayer<M>
{
  /** Unique per instance; only `…${clientPrefix}!…` channels are received here. */
  readonly clientPrefix = uuidHex();
  private readonly shards: ShardSet;
  private readonly sends: SendBatcher;
  private readonly receiver: Receiver<M>;
  private readonly groups: Groups;
  /** Heartbeat and dead-process verdicts; undefined with `liveness: false`. */
  private readonly liveness: Liveness | undefined;
  /** Next host for a normal-channel send with `normalChannelSharding: 'round-robin'`. */
  private sendCursor = 0;

  constructor(options: RedisLayerOptions = {}) {
    super(options, (o) => ({
      prefixLength: o.randomPrefixLength,
      ttlSeconds: o.expiryMs / 1000 + o.fernetTtlSlack,
    }));
    this.shards = createShardSet(
      this.options.hosts,
      {
        sharding: this.options.sharding,
        commandTimeoutMs: this.options.commandTimeoutMs,
        lazyConnect: true,
        failFast: true,
        // Sends are already batched per shard per tick (SendBatcher); a group send is one
        // large command (all its keys), for which a pipeline would only add a deferral and a
        // copy of the payloads.
        unpipelined: [SEND, SEND_MANY, GROUP_SEND].map(scriptCommand),
      },
      this.shardEvents(),
    );
    const context = {
      shards: this.shards,
      options: this.options,
      count: (name: CounterName, by?: number) => this.count(name, by),
      capacityFor: (channel: string) => this.capacityFor(channel),
      report: (err: unknown, where: string) => {
        if (!this.closed) this.reportError(err, where);
      },
      notify: (event: keyof LayerObserver, value: number) => this.notify(event, value),
    };
    this.receiver = new Receiver<M>({
      ...context,
      codec: this.codec,
      clientPrefix: this.clientPrefix,
      skipUnreadable: (where, err) => this.skipUnreadable(where, err),
      isClosed: () => this.closed,
    });
    this.groups = new Groups({
      ...context,
      isDeadQueue: (name) => this.liveness?.isDeadQueue(name) ?? false,
    });
    this.sends = new SendBatcher(
      (index, work) => this.shards.run(index, work),
      Math.ceil(this.options.expiryMs),
    );
    this.liveness = this.makeLiveness();
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
    const key = this.options.prefix + name;
    const capacity = this.capacityFor(channel);
    const score = nextScore();
    const index =
      !local && this.options.normalChannelSharding === 'round-robin' && !this.shards.placesKeys
        ? this.sendCursor++ % this.shards.size
        : this.shards.index(name, key);
    const added = await this.sends.send(
      index,
      key,
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

  /** Not `async` (see Receiver.receive); errors still arrive as rejections, never throws. */
  receive(channel: string, opts?: ReceiveOptions): Promise<M> {
    try {
      this.assertOpen();
      assertChannelName(channel);
      assertOwnChannel(channel, this.clientPrefix);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.receiver.receive(channel, opts);
  }

  async newChannel(prefix = 'specific'): Promise<string> {
    this.assertOpen();
    this.liveness?.start();
    return newProcessChannel(prefix, this.clientPrefix);
  }

  async groupAdd(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    await this.groups.add(group, channel);
  }

  async groupDiscard(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    await this.groups.discard(group, channel);
  }

  async groupSend(group: string, message: M): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertMessage(message);
    // Refuses a bad or oversized message before touching Redis.
    const encodeFor = this.codec.groupEncoder(message);
    this.count('groupSends');
    this.liveness?.start();
    await this.groups.send(group, encodeFor);
  }

  async flush(): Promise<void> {
    this.assertOpen();
    await this.shards.deleteMatching(prefixPattern(this.options.prefix));
    this.receiver.clear();
    this.groups.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.liveness?.stop();
    await this.receiver.close(new LayerClosed(this.constructor.name));
    this.shards.close();
    this.groups.clear();
  }

  // ---------------------------------------------------------------------------------------
  // Beyond the ASGI interface

  /**
   * Forgets a channel: leaves every group this layer added it to and drops its buffer; its
   * messages still queued or prefetched are dropped or given back (Receiver.forget).
   */
  async deleteChannel(channel: string): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    await Promise.all([this.groups.leaveAll(channel), this.receiver.forget(channel)]);
  }

  /**
   * The group's live members: memberships not expired, of processes not known dead (liveness;
   * channels of processes that never registered always count).
   */
  async groupChannels(group: string): Promise<string[]> {
    this.assertOpen();
    assertGroupName(group);
    this.liveness?.start();
    return this.groups.channels(group);
  }

  /** How many live members the group has (see groupChannels). */
  async groupSize(group: string): Promise<number> {
    return (await this.groupChannels(group)).length;
  }

  /**
   * Each shard's state (PING round trip, role, Sentinel master name; on a cluster, each master),
   * the reader's, and how long the oldest waiting receive has waited. Never rejects; takes at
   * most `commandTimeoutMs`.
   */
  async health(): Promise<HealthReport> {
    return healthReport(await this.shards.health(this.options.commandTimeoutMs), {
      closed: this.closed,
      reader: this.closed ? 'stopped' : this.receiver.readerState,
      oldestWaitMs: this.receiver.oldestWaitMs(),
    });
  }

  /** Number of Redis hosts (shards); on a cluster, its slots. */
  get shardCount(): number {
    return this.shards.size;
  }

  /** The shard (on a cluster: the slot) a channel's queue — or, with `group: true`, a group — lives on. */
  shardOf(name: string, { group = false } = {}): number {
    const { prefix } = this.options;
    if (group) return this.shards.index(name, `${prefix}:group:${name}`);
    const local = nonLocalName(name);
    return this.shards.index(local, prefix + local);
  }

  private makeLiveness(): Liveness | undefined {
    const opts = this.options.liveness;
    if (opts === false) return undefined;
    const registry = this.options.prefix + REGISTRY_NAME;
    const index = this.shards.index(REGISTRY_NAME, registry);
    return new Liveness(
      registry,
      this.clientPrefix,
      { ...opts, trimAfterMs: Math.ceil(this.options.groupExpiryMs + opts.deadAfterMs) },
      {
        onRegistry: (work) => this.shards.run(index, work),
        leave: () =>
          this.shards
            .run(index, (client) => client.zrem(registry, this.clientPrefix))
            .then(() => {}),
        restore: () => this.groups.restore(),
        report: (err) => this.reportError(err, 'liveness heartbeat'),
      },
    );
  }
}
