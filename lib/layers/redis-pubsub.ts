/**
 * Redis Pub/Sub layer, wire-compatible with channels_redis 4.x `RedisPubSubChannelLayer`
 * (docs/wire-protocol.md): a channel is the Redis channel of the same name, a group is the Redis channel
 * `prefix + '__group__' + group`, a payload is the bare serialized message (or a bare Fernet
 * token with keys) — no random prefix, nothing stored in Redis.
 *
 * Unlike channels_redis it is push-based (one subscriber connection per shard, messages arrive
 * as Redis pushes them — no 100 ms polling), publishes on the shard's command connection, one
 * writev per turn (never queued behind a SUBSCRIBE), keeps subscriptions until `deleteChannel()`
 * or `close()` (an aborted receive unsubscribes nothing — channels_redis #276), bounds every local
 * queue, resubscribes everything after a reconnect and reports it with 'disconnect'/'reconnect'.
 *
 * Delivery is at most once: a message published while nobody (or no connection) is subscribed
 * is gone, as with any Redis Pub/Sub.
 *
 * Where names are published and subscribed is a transport (redis/pubsub-transport.ts): the
 * `hosts` shards, or one Redis Cluster — sharded Pub/Sub (SSUBSCRIBE/SPUBLISH) by default,
 * `clusterPubSub: 'global'` for PUBLISH/SUBSCRIBE — under the same names (docs/pubsub.md).
 *
 * Decisions (README):
 * - `receive()` on a channel this layer did not create subscribes to it on first use (as
 *   channels_redis does) and keeps that subscription until `deleteChannel()`/`close()`. A
 *   `…!` channel it did not create rejects with "Wrong client prefix".
 * - `groupAdd()` accepts channels this layer knows: made by `newChannel()` or already received
 *   on. Membership is a set (re-adding refreshes it, one discard ends it); the group's Redis
 *   channel is held once per local member and unsubscribed when the last member leaves.
 *   Memberships expire `groupExpiry` after their last `groupAdd`, as in the core layer.
 * - `send()` never rejects `ChannelFull`: a publisher cannot see remote queues. Each receiving
 *   channel's local queue is bounded by its capacity and drops its oldest message to make room
 *   (`localDropped`); unread messages expire after `expiry` (`expired`).
 * - `flush()` drops every local buffer and every group membership (as flushing the core layer
 *   deletes the group keys) but keeps channel subscriptions, so existing channels and pending
 *   receives go on working.
 * - `deleteChannel()` rejects receives still waiting on that channel.
 */
import { healthReport, type HealthReport, type ReaderState } from '../redis/health.ts';
import type { LayerOptions } from '../config.ts';
import { Closing } from '../closing.ts';
import { abortReason, LayerClosed, WrongClientPrefix } from '../errors.ts';
import { ExpiringMemberships } from '../memberships.ts';
import { Mailboxes } from '../mailboxes.ts';
import { assertChannelName, assertGroupName, isProcessLocal, uuidHex } from '../names.ts';
import { createPubSubTransport, type PubSubTransport } from '../redis/pubsub-transport.ts';
import type { Subscriptions } from '../redis/subscriber.ts';
import { copier } from '../serde/clone.ts';
import { assertMessage } from '../serde/codec.ts';
import type { ChannelLayer, Message, ReceiveOptions } from '../types.ts';
import { BaseLayer } from './base.ts';

export type RedisPubSubOptions = Omit<LayerOptions, 'randomPrefixLength'>;

/**
 * One local channel. Kept small (100,000 idle channels are 100,000 of these): no promise once
 * subscribed, no set until the channel joins a group, nothing per waiting receive.
 */
class ChannelState {
  /** Redis group channels this channel is a member of (created on the first groupAdd). */
  groups: Set<string> | undefined = undefined;
  /** Settles when the channel's SUBSCRIBE is confirmed; dropped (undefined) once it is. */
  ready: Promise<void> | undefined;

  constructor(ready: Promise<void>) {
    this.ready = ready;
  }
}

const noop = (): void => {};

/** What a receive on a channel gets when `deleteChannel()` removes the channel under it. */
function deletedError(channel: string): Error {
  return new Error(`Channel ${channel} was deleted (deleteChannel)`);
}

export class RedisPubSubChannelLayer<M extends Message = Message>
  extends BaseLayer
  implements ChannelLayer<M>
{
  /** Where names are published and subscribed: hosts, or a Redis Cluster. */
  private readonly transport: PubSubTransport;
  private readonly mailboxes: Mailboxes<M>;
  /** Shared continuations of send()/groupSend() (no closure per message). */
  private readonly sentOne = (): void => this.count('sent');
  private readonly groupSentOne = (): void => this.count('groupSends');
  /** Local channels this layer is subscribed to. */
  private readonly channels = new Map<string, ChannelState>();
  /** Redis group channel → local member channels, expiring; an expired one is left. */
  private readonly groups: ExpiringMemberships;
  /**
   * Waits that close() cuts short with LayerClosed: ioredis leaves commands queued while
   * reconnecting unsettled when disconnected, so close() must not depend on them settling.
   */
  private readonly closing = new Closing();

  constructor(options: RedisPubSubOptions = {}) {
    // No Fernet TTL: a published message is never stored, so it can't be replayed late.
    super(options, () => ({ prefixLength: 0 }));
    this.mailboxes = new Mailboxes<M>({
      expiryMs: this.options.expiryMs,
      onExpired: (n) => this.count('expired', n),
    });
    this.groups = new ExpiringMemberships(this.options.groupExpiryMs, (name, channel) => {
      void this.leave(name, channel);
    });
    this.transport = createPubSubTransport(
      this.options.hosts,
      {
        sharding: this.options.sharding,
        commandTimeoutMs: this.options.commandTimeoutMs,
        clusterPubSub: this.options.clusterPubSub,
        // Names are ASCII (names.ts): latin1 decodes them exactly, and faster than utf8.
        onMessage: (name, payload) => this.dispatch(name.toString('latin1'), payload),
        onError: (err, context) => this.reportError(err, context),
        closing: this.closing,
      },
      this.shardEvents(),
    );
  }

  // ---------------------------------------------------------------------------------------
  // ChannelLayer

  send(channel: string, message: M): Promise<void> {
    let payload: Buffer;
    try {
      this.assertOpen();
      assertChannelName(channel);
      assertMessage(message);
      payload = this.codec.encode(message);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.publish(channel, payload, this.sentOne);
  }

  /**
   * Not async: the usual receive (a subscribed channel, no signal) is one mailbox take and one
   * `then`, without an async frame, AbortController or listener per receive.
   */
  receive(channel: string, opts?: ReceiveOptions): Promise<M> {
    let state: ChannelState | undefined;
    const signal = opts?.signal;
    try {
      this.assertOpen();
      assertChannelName(channel);
      if (signal?.aborted) throw abortReason(signal);
      state = this.channels.get(channel);
      if (!state) {
        if (isProcessLocal(channel)) {
          throw new WrongClientPrefix(channel, 'newChannel');
        }
        state = this.openChannel(channel);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (state.ready === undefined) return this.take(channel, signal);
    return this.receiveOnceSubscribed(channel, state, signal);
  }

  private async receiveOnceSubscribed(
    channel: string,
    state: ChannelState,
    signal: AbortSignal | undefined,
  ): Promise<M> {
    await this.untilSubscribed(channel, state, signal);
    // close() or deleteChannel() may have run while the SUBSCRIBE was in flight.
    this.assertOpen();
    if (this.channels.get(channel) !== state) throw deletedError(channel);
    if (signal?.aborted) throw abortReason(signal);
    return this.take(channel, signal);
  }

  /**
   * The channel's next message. 'received' is counted when a message is handed over: here for
   * a buffered one, in deliver() for one put straight into a waiting receive. The user's signal
   * goes to the mailbox as is (it removes an aborted receive synchronously: no loss, no
   * duplicate); deleteChannel() rejects waiting receives through the mailbox.
   */
  private take(channel: string, signal: AbortSignal | undefined): Promise<M> {
    // (Both callers have refused an already aborted signal.)
    const buffered = this.mailboxes.takeBuffered(channel);
    if (buffered === undefined) return this.mailboxes.take(channel, signal);
    this.count('received');
    return Promise.resolve(buffered);
  }

  /** `${prefix option}${prefix}${uuid hex}`; resolves once Redis confirmed the subscription. */
  async newChannel(prefix = 'specific.'): Promise<string> {
    this.assertOpen();
    if (typeof prefix !== 'string')
      throw new TypeError(`newChannel prefix must be a string, got ${typeof prefix}`);
    const channel = `${this.options.prefix}${prefix}${uuidHex()}`;
    assertChannelName(channel);
    const state = this.openChannel(channel);
    try {
      if (state.ready) await this.subscribed(state.ready, channel);
    } catch (err) {
      if (this.channels.get(channel) === state) void this.forgetChannel(channel, state);
      throw this.failure(err);
    }
    return channel;
  }

  /** Resolves once this process is subscribed to the group; the channel must be one of ours. */
  async groupAdd(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    const state = this.channels.get(channel);
    if (!state) {
      throw new Error(
        `groupAdd(${JSON.stringify(group)}, ${JSON.stringify(channel)}): only channels of this layer ` +
          '(from newChannel(), or already received on) can join a group on the Pub/Sub layer',
      );
    }
    const name = this.groupChannel(group);
    const subs = this.subscriptionsOf(name);
    // Re-adding refreshes the membership and holds nothing more.
    const { expiresAt, added } = this.groups.add(name, channel);
    let ready: Promise<void>;
    if (added) {
      (state.groups ??= new Set()).add(name);
      ready = subs.acquire(name);
    } else {
      ready = subs.ready(name);
    }
    try {
      await this.subscribed(ready, name);
    } catch (err) {
      if (this.groups.members(name)?.get(channel) === expiresAt) void this.leave(name, channel);
      throw this.failure(err);
    }
  }

  /** Leaves the group; resolves (doing nothing) for a non-member. */
  async groupDiscard(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    const name = this.groupChannel(group);
    if (!this.groups.members(name)?.has(channel)) return;
    await this.leave(name, channel);
  }

  groupSend(group: string, message: M): Promise<void> {
    let payload: Buffer;
    try {
      this.assertOpen();
      assertGroupName(group);
      assertMessage(message);
      payload = this.codec.encode(message);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.publish(this.groupChannel(group), payload, this.groupSentOne);
  }

  /** Unsubscribes the channel, leaves every group it joined, drops its buffer, ends its receives. */
  async deleteChannel(channel: string): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    this.count('deletedDropped', this.mailboxes.drop(channel));
    const state = this.channels.get(channel);
    if (state) await this.forgetChannel(channel, state);
  }

  /** Drops local buffers and group memberships; channel subscriptions and receives stay. */
  async flush(): Promise<void> {
    this.assertOpen();
    this.mailboxes.clear();
    const left: Promise<void>[] = [];
    for (const name of this.groups.names()) {
      for (const channel of [...this.groups.members(name)!.keys()]) {
        left.push(this.leave(name, channel));
      }
    }
    await Promise.all(left);
  }

  /** Disconnects every connection, rejects pending receives, stops every timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.close(new LayerClosed(this.constructor.name));
    this.groups.clear();
    this.channels.clear();
    this.transport.close();
    this.mailboxes.close(new LayerClosed(this.constructor.name));
  }

  // ---------------------------------------------------------------------------------------
  // Introspection

  /**
   * This process's members of the group whose membership has not expired. Pub/Sub membership is
   * per process (a subscription here): members in other processes are not known, and not counted.
   */
  async groupChannels(group: string): Promise<string[]> {
    this.assertOpen();
    assertGroupName(group);
    return this.groups.live(this.groupChannel(group));
  }

  /** How many members of the group this process has (see groupChannels). */
  async groupSize(group: string): Promise<number> {
    return (await this.groupChannels(group)).length;
  }

  /**
   * Each shard's state (PING round trip, role, Sentinel master name), the subscriber connections'
   * ('reconnecting' while one is down) and how long the oldest waiting receive has waited.
   * Never rejects; takes at most `commandTimeoutMs`.
   */
  async health(): Promise<HealthReport> {
    let reader: ReaderState = 'running';
    if (this.closed) reader = 'stopped';
    else if (this.subscriptionCount === 0) reader = 'idle';
    else if (this.transport.subscriberDown()) reader = 'reconnecting';
    return healthReport(await this.transport.health(this.options.commandTimeoutMs), {
      closed: this.closed,
      reader,
      oldestWaitMs: this.mailboxes.oldestWaitMs(),
    });
  }

  /** Redis channels this layer is subscribed to (or subscribing to), over all shards. */
  get subscriptionCount(): number {
    return this.transport.subscriptions.reduce((n, s) => n + s.size, 0);
  }

  /** Local channels with buffered messages or waiting receivers (for leak checks). */
  get activeChannels(): number {
    return this.mailboxes.channelCount;
  }

  /**
   * The shard index a Redis channel name (channel, or `prefix__group__group`) lives on; 0 on a
   * cluster (its only entry of `hosts`).
   */
  shardOf(name: string): number {
    return this.transport.index(name);
  }

  /** The Redis channel a group publishes on: `prefix + '__group__' + group` (channels_redis). */
  groupChannel(group: string): string {
    return `${this.options.prefix}__group__${group}`;
  }

  // ---------------------------------------------------------------------------------------
  // Internals

  private subscriptionsOf(name: string): Subscriptions {
    return this.transport.subscriptionsOf(name);
  }

  /**
   * A subscription's confirmation, within `commandTimeoutMs` like every other call (with the
   * shard unreachable it would never come), cut short by close().
   */
  private subscribed(ready: Promise<void>, name: string): Promise<void> {
    const ms = this.options.commandTimeoutMs;
    return this.closing.until(ready, {
      ms,
      error: () => this.transport.unconfirmed(name, `subscription not confirmed within ${ms} ms`),
    });
  }

  /** Within `commandTimeoutMs`: `sent` runs (Redis took the message) or it rejects. */
  private publish(name: string, payload: Buffer, sent: () => void): Promise<void> {
    return this.transport.publish(name, payload, sent);
  }

  private openChannel(channel: string): ChannelState {
    const ready = this.subscriptionsOf(channel).acquire(channel);
    const state = new ChannelState(ready);
    ready.then(() => {
      // Subscribed: receives go the short way, and the promise is not kept.
      if (state.ready === ready) state.ready = undefined;
    }, noop);
    this.channels.set(channel, state);
    return state;
  }

  /** Waits for a channel's subscription; a receive's abort ends the wait, not the subscription. */
  private async untilSubscribed(
    channel: string,
    state: ChannelState,
    signal?: AbortSignal,
  ): Promise<void> {
    let abortedWait = false;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        abortedWait = true;
        reject(abortReason(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.closing.until(state.ready ?? Promise.resolve()), aborted]);
    } catch (err) {
      if (abortedWait) throw err;
      // The SUBSCRIBE itself failed: forget the channel so a later receive tries again.
      if (this.channels.get(channel) === state) void this.forgetChannel(channel, state);
      throw this.failure(err);
    } finally {
      signal?.removeEventListener('abort', onAbort!);
    }
  }

  private forgetChannel(channel: string, state: ChannelState): Promise<void> {
    this.channels.delete(channel);
    const released = [this.subscriptionsOf(channel).release(channel)];
    for (const name of state.groups ?? []) released.push(this.leave(name, channel));
    this.mailboxes.drop(channel);
    this.mailboxes.rejectWaiters(channel, deletedError(channel));
    return Promise.all(released).then(() => {});
  }

  /** Ends one membership; the group's Redis channel is released with its last local member. */
  private leave(name: string, channel: string): Promise<void> {
    if (!this.groups.remove(name, channel)) return Promise.resolve();
    this.channels.get(channel)?.groups?.delete(name);
    return this.subscriptionsOf(name).release(name);
  }

  /** A message pushed by Redis: to the channel of that name and/or every member of that group. */
  private dispatch(name: string, payload: Buffer): void {
    if (this.closed) return;
    const channel = this.channels.get(name);
    const members = this.groups.members(name);
    // A late message for something unsubscribed a moment ago.
    if (!channel && !members) return;
    let message: M;
    try {
      message = this.codec.decode(payload) as M;
    } catch (err) {
      this.skipUnreadable(`of ${payload.length} bytes on ${name}`, err);
      return;
    }
    if (!members) {
      this.deliver(name, message);
      return;
    }
    // Every receiving channel gets its own copy (decoded once); the first takes the original.
    let copy: (() => M) | undefined;
    let original = true;
    if (channel) {
      this.deliver(name, message);
      original = false;
    }
    const now = Date.now();
    let delivered = 0;
    // Deleting from a Map while iterating it is safe; leave() deletes synchronously.
    for (const [member, expiresAt] of members) {
      if (expiresAt <= now) {
        void this.leave(name, member);
        continue;
      }
      this.deliver(member, original ? message : (copy ??= copier(message))());
      original = false;
      delivered++;
    }
    this.count('groupDeliveries', delivered);
  }

  private deliver(channel: string, message: M): void {
    const result = this.mailboxes.put(channel, message, this.capacityFor(channel), 'drop-oldest');
    if (result === 'delivered') this.count('received');
    else if (result === 'displaced') this.count('localDropped');
  }
}
