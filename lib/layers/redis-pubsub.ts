/**
 * Redis Pub/Sub layer, wire-compatible with channels_redis 4.x `RedisPubSubChannelLayer`
 * (WIRE.md): a channel is the Redis channel of the same name, a group is the Redis channel
 * `prefix + '__group__' + group`, a payload is the bare serialized message (or a bare Fernet
 * token with keys) — no random prefix, nothing stored in Redis.
 *
 * Unlike channels_redis it is push-based (one subscriber connection per shard, messages arrive
 * as Redis pushes them — no 100 ms polling), publishes on the shard's auto-pipelined command
 * connection (never queued behind a SUBSCRIBE), keeps subscriptions until `deleteChannel()` or
 * `close()` (an aborted receive unsubscribes nothing — channels_redis #276), bounds every local
 * queue, resubscribes everything after a reconnect and reports it with 'disconnect'/'reconnect'.
 *
 * Delivery is at most once: a message published while nobody (or no connection) is subscribed
 * is gone, as with any Redis Pub/Sub.
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
import { randomUUID } from 'node:crypto';
import type { LayerOptions } from '../config.ts';
import { abortReason, LayerClosed } from '../errors.ts';
import { Mailboxes } from '../mailboxes.ts';
import { assertChannelName, assertGroupName, isProcessLocal } from '../names.ts';
import { parseHost } from '../redis/hosts.ts';
import { crc32Placement, ringPlacement, type Placement } from '../redis/placement.ts';
import { Shard, type Role } from '../redis/shard.ts';
import { Subscriptions } from '../redis/subscriber.ts';
import { assertMessage } from '../serde/codec.ts';
import type { ChannelLayer, Message, ReceiveOptions } from '../types.ts';
import { BaseLayer } from './base.ts';

export type RedisPubSubOptions = Omit<LayerOptions, 'randomPrefixLength'>;

interface ChannelState {
  /** Made by `newChannel()` (as opposed to subscribed on first receive). */
  readonly created: boolean;
  /** Redis group channels this channel is a member of. */
  readonly groups: Set<string>;
  /** Settles when the channel's SUBSCRIBE is confirmed. */
  readonly ready: Promise<void>;
  live: boolean;
  /** Receives waiting on this channel, so `deleteChannel()` can end them. */
  readonly receivers: Set<AbortController>;
}

interface ShardHealth {
  /** Connections of the shard that dropped and are not back (subscriber: and resubscribed). */
  readonly down: Set<Role>;
  /** Bumped on every subscriber drop/return, so a stale resubscription reports nothing. */
  epoch: number;
  /** A connection error was reported for the current outage (report one per outage). */
  reported: boolean;
  /** A connection of the shard has been ready once: later losses are 'disconnect' events. */
  connected: boolean;
}

/** What a receive on a channel gets when `deleteChannel()` removes the channel under it. */
function deletedError(channel: string): Error {
  return new Error(`Channel ${channel} was deleted (deleteChannel)`);
}

export class RedisPubSubChannelLayer<M extends Message = Message>
  extends BaseLayer
  implements ChannelLayer<M>
{
  private readonly shards: Shard[];
  private readonly subscriptions: Subscriptions[];
  private readonly health: ShardHealth[];
  private readonly placement: Placement;
  private readonly mailboxes: Mailboxes<M>;
  /** Local channels this layer is subscribed to. */
  private readonly channels = new Map<string, ChannelState>();
  /** Redis group channel → (local member channel → membership expiry time). */
  private readonly groups = new Map<string, Map<string, number>>();
  private groupSweeper: NodeJS.Timeout | undefined;
  /** Rejects with LayerClosed when close() is called. */
  private readonly closedPromise: Promise<never>;
  private rejectClosed!: (err: Error) => void;

  constructor(options: RedisPubSubOptions = {}) {
    // No Fernet TTL: a published message is never stored, so it can't be replayed late (issue 5).
    super(options, () => ({ prefixLength: 0 }));
    this.closedPromise = new Promise<never>((_, reject) => {
      this.rejectClosed = reject;
    });
    this.closedPromise.catch(() => {});
    const specs = this.options.hosts.map((entry, i) => parseHost(entry, i));
    this.placement =
      this.options.sharding === 'ring'
        ? ringPlacement(specs.map((s) => s.id))
        : crc32Placement(specs.length);
    this.mailboxes = new Mailboxes<M>({
      expiryMs: this.options.expiryMs,
      onExpired: (n) => this.count('expired', n),
    });
    this.shards = specs.map(
      // failFast: a PUBLISH that timed out or was cut off is never sent later behind the
      // caller's back (ioredis's offline queue / resend); publish() awaits whenReady() instead.
      (spec, i) =>
        new Shard(i, spec, { commandTimeoutMs: this.options.commandTimeoutMs, failFast: true }),
    );
    this.health = this.shards.map(() => ({
      down: new Set<Role>(),
      epoch: 0,
      reported: false,
      connected: false,
    }));
    this.subscriptions = this.shards.map(
      (shard) =>
        new Subscriptions(
          shard,
          // Names are ASCII (names.ts): latin1 decodes them exactly, and faster than utf8.
          (name, payload) => this.dispatch(name.toString('latin1'), payload),
          (err, context) => this.reportError(err, `shard ${shard.index}: ${context}`),
        ),
    );
    this.shards.forEach((shard, i) => {
      shard.on('down', (role: Role) => this.shardDown(i, role));
      shard.on('up', (role: Role) => this.shardUp(i, role));
      // Sentinel shard back on a different master (docs/failover.md).
      shard.on('failover', (change: unknown) => {
        if (this.closed) return;
        this.count('failovers');
        this.emit('failover', i, change);
      });
      const health = this.health[i]!;
      for (const client of [shard.client, this.subscriptions[i]!.client]) {
        client.once('ready', () => {
          health.connected = true;
        });
      }
      // One report per outage. A shard that was reachable reports its loss as 'disconnect'
      // (and the error only to the logger), so `await once(layer, 'reconnect')` is not
      // rejected by the very outage it waits out; a shard never reached reports an 'error'.
      shard.on('connectionError', (err: Error) => {
        if (this.closed || health.reported) return;
        health.reported = true;
        const context = `Redis shard ${i} (${shard.spec.id})`;
        if (health.connected) this.logger.warn(`chanlayer: ${context}: ${err.message}`);
        else this.reportError(err, context);
      });
    });
  }

  // ---------------------------------------------------------------------------------------
  // ChannelLayer

  async send(channel: string, message: M): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    assertMessage(message);
    await this.publish(channel, this.codec.encode(message));
    this.count('sent');
  }

  async receive(channel: string, opts: ReceiveOptions = {}): Promise<M> {
    this.assertOpen();
    assertChannelName(channel);
    const { signal } = opts;
    if (signal?.aborted) throw abortReason(signal);
    let state = this.channels.get(channel);
    if (!state) {
      if (isProcessLocal(channel)) {
        throw new Error(
          `Wrong client prefix: ${channel} was not created by this layer (newChannel)`,
        );
      }
      state = this.openChannel(channel, false);
    }
    if (!state.live) {
      await this.untilSubscribed(channel, state, signal);
      // close() or deleteChannel() may have run while the SUBSCRIBE was in flight.
      this.assertOpen();
      if (this.channels.get(channel) !== state) throw deletedError(channel);
    }

    // An internal controller, so deleteChannel() can end this receive too; the user's signal
    // aborts it synchronously, which keeps Mailboxes' no-loss/no-duplicate guarantee.
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(abortReason(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    state.receivers.add(controller);
    try {
      const message = await this.mailboxes.take(channel, controller.signal);
      this.count('received');
      return message;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      state.receivers.delete(controller);
    }
  }

  /** `${prefix option}${prefix}${uuid hex}`; resolves once Redis confirmed the subscription. */
  async newChannel(prefix = 'specific.'): Promise<string> {
    this.assertOpen();
    if (typeof prefix !== 'string')
      throw new TypeError(`newChannel prefix must be a string, got ${typeof prefix}`);
    const channel = `${this.options.prefix}${prefix}${randomUUID().replaceAll('-', '')}`;
    assertChannelName(channel);
    const state = this.openChannel(channel, true);
    try {
      await this.untilClosed(state.ready);
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
    let members = this.groups.get(name);
    if (!members) {
      members = new Map();
      this.groups.set(name, members);
    }
    const expiresAt = Date.now() + this.options.groupExpiryMs;
    let ready: Promise<void>;
    if (members.has(channel)) {
      // Re-adding refreshes the membership (Map order = expiry order) and holds nothing more.
      members.delete(channel);
      members.set(channel, expiresAt);
      ready = subs.ready(name);
    } else {
      members.set(channel, expiresAt);
      state.groups.add(name);
      ready = subs.acquire(name);
    }
    this.startGroupSweeper();
    try {
      await this.untilClosed(ready);
    } catch (err) {
      if (this.groups.get(name)?.get(channel) === expiresAt) void this.leave(name, channel);
      throw this.failure(err);
    }
  }

  /** Leaves the group; resolves (doing nothing) for a non-member. */
  async groupDiscard(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    const name = this.groupChannel(group);
    if (!this.groups.get(name)?.has(channel)) return;
    await this.leave(name, channel);
  }

  async groupSend(group: string, message: M): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertMessage(message);
    await this.publish(this.groupChannel(group), this.codec.encode(message));
    this.count('groupSends');
  }

  /** Unsubscribes the channel, leaves every group it joined, drops its buffer, ends its receives. */
  async deleteChannel(channel: string): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    const state = this.channels.get(channel);
    if (!state) {
      this.mailboxes.drop(channel);
      return;
    }
    await this.forgetChannel(channel, state);
  }

  /** Drops local buffers and group memberships; channel subscriptions and receives stay. */
  async flush(): Promise<void> {
    this.assertOpen();
    this.mailboxes.clear();
    const left: Promise<void>[] = [];
    for (const [name, members] of [...this.groups]) {
      for (const channel of [...members.keys()]) left.push(this.leave(name, channel));
    }
    this.stopGroupSweeper();
    await Promise.all(left);
  }

  /** Disconnects every connection, rejects pending receives, stops every timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rejectClosed(new LayerClosed(this.constructor.name));
    this.stopGroupSweeper();
    this.groups.clear();
    this.channels.clear();
    for (const subs of this.subscriptions) subs.close();
    for (const shard of this.shards) shard.close();
    this.mailboxes.close(new LayerClosed(this.constructor.name));
  }

  // ---------------------------------------------------------------------------------------
  // Introspection

  /** Redis channels this layer is subscribed to (or subscribing to), over all shards. */
  get subscriptionCount(): number {
    return this.subscriptions.reduce((n, s) => n + s.size, 0);
  }

  /** Local channels with buffered messages or waiting receivers (for leak checks). */
  get activeChannels(): number {
    return this.mailboxes.channelCount;
  }

  /** The shard index a Redis channel name (channel, or `prefix__group__group`) lives on. */
  shardOf(name: string): number {
    return this.placement.index(name);
  }

  /** The Redis channel a group publishes on: `prefix + '__group__' + group` (channels_redis). */
  groupChannel(group: string): string {
    return `${this.options.prefix}__group__${group}`;
  }

  // ---------------------------------------------------------------------------------------
  // Internals

  private subscriptionsOf(name: string): Subscriptions {
    return this.subscriptions[this.placement.index(name)]!;
  }

  /**
   * PUBLISH on the shard's command connection, once it is ready: within `commandTimeoutMs`
   * it resolves (Redis took the message) or rejects with an error naming the shard.
   */
  private async publish(name: string, payload: Buffer): Promise<void> {
    const shard = this.shards[this.placement.index(name)]!;
    try {
      await this.untilClosed(shard.whenReady());
      await this.untilClosed(shard.client.publish(name, payload));
    } catch (err) {
      throw this.failure(shard.explain(err, 'the PUBLISH'));
    }
  }

  /** After close(), whatever a Redis command failed with becomes "the layer is closed". */
  private failure(err: unknown): unknown {
    return this.closed ? new LayerClosed(this.constructor.name) : err;
  }

  private openChannel(channel: string, created: boolean): ChannelState {
    const state: ChannelState = {
      created,
      groups: new Set(),
      ready: this.subscriptionsOf(channel).acquire(channel),
      live: false,
      receivers: new Set(),
    };
    state.ready.then(
      () => {
        state.live = true;
      },
      () => {},
    );
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
      await Promise.race([this.untilClosed(state.ready), aborted]);
    } catch (err) {
      if (abortedWait) throw err;
      // The SUBSCRIBE itself failed: forget the channel so a later receive tries again.
      if (this.channels.get(channel) === state) void this.forgetChannel(channel, state);
      throw this.failure(err);
    } finally {
      signal?.removeEventListener('abort', onAbort!);
    }
  }

  /**
   * `pending`, or a rejection as soon as the layer closes: ioredis leaves commands queued while
   * reconnecting unsettled when disconnected, so close() must not depend on them settling.
   */
  private untilClosed<T>(pending: Promise<T>): Promise<T> {
    return Promise.race([pending, this.closedPromise]);
  }

  private forgetChannel(channel: string, state: ChannelState): Promise<void> {
    this.channels.delete(channel);
    const released = [this.subscriptionsOf(channel).release(channel)];
    for (const name of state.groups) released.push(this.leave(name, channel));
    this.mailboxes.drop(channel);
    const deleted = deletedError(channel);
    for (const controller of state.receivers) controller.abort(deleted);
    return Promise.all(released).then(() => {});
  }

  /** Ends one membership; the group's Redis channel is released with its last local member. */
  private leave(name: string, channel: string): Promise<void> {
    const members = this.groups.get(name);
    if (!members?.delete(channel)) return Promise.resolve();
    if (members.size === 0) this.groups.delete(name);
    this.channels.get(channel)?.groups.delete(name);
    return this.subscriptionsOf(name).release(name);
  }

  /** A message pushed by Redis: to the channel of that name and/or every member of that group. */
  private dispatch(name: string, payload: Buffer): void {
    if (this.closed) return;
    const channel = this.channels.get(name);
    const members = this.groups.get(name);
    // A late message for something unsubscribed a moment ago.
    if (!channel && !members) return;
    let message: M;
    try {
      message = this.codec.decode(payload) as M;
    } catch (err) {
      this.count('unreadable');
      this.logger.warn(
        `chanlayer: skipped an unreadable payload (${payload.length} bytes) on ${name}: ${(err as Error).message}`,
      );
      return;
    }
    // Every receiving channel gets its own copy; the first one takes the decoded message.
    let first: M | undefined = message;
    const copy = (): M => {
      if (first === undefined) return this.codec.decode(payload) as M;
      const m = first;
      first = undefined;
      return m;
    };
    if (channel) this.deliver(name, copy());
    if (members) {
      const now = Date.now();
      for (const [member, expiresAt] of [...members]) {
        if (expiresAt <= now) {
          void this.leave(name, member);
          continue;
        }
        this.deliver(member, copy());
        this.count('groupDeliveries');
      }
    }
  }

  private deliver(channel: string, message: M): void {
    if (
      this.mailboxes.put(channel, message, this.capacityFor(channel), 'drop-oldest') === 'displaced'
    ) {
      this.count('localDropped');
    }
  }

  private shardDown(index: number, role: Role): void {
    if (this.closed) return;
    const health = this.health[index]!;
    if (role === 'subscriber') health.epoch++;
    const wasUp = health.down.size === 0;
    health.down.add(role);
    if (wasUp) {
      this.count('disconnects');
      this.safeEmit('disconnect', index);
    }
  }

  private shardUp(index: number, role: Role): void {
    if (this.closed) return;
    const health = this.health[index]!;
    if (role !== 'subscriber') {
      this.markUp(index, role);
      return;
    }
    const epoch = ++health.epoch;
    // Subscriptions resubscribed everything as the connection became ready; wait for it.
    this.subscriptions[index]!.resubscribed().then(
      () => {
        if (epoch === health.epoch) this.markUp(index, role);
      },
      (err: unknown) => {
        // The connection dropped again while resubscribing; the next 'up' starts over.
        if (!this.closed && epoch === health.epoch)
          this.reportError(err, `shard ${index}: resubscribe`);
      },
    );
  }

  private markUp(index: number, role: Role): void {
    if (this.closed) return;
    const health = this.health[index]!;
    if (!health.down.delete(role) || health.down.size > 0) return;
    health.reported = false;
    this.count('reconnects');
    this.safeEmit('reconnect', index);
  }

  /** A listener that throws must not break the connection handling it was called from. */
  private safeEmit(event: 'disconnect' | 'reconnect', index: number): void {
    try {
      this.emit(event, index);
    } catch (err) {
      this.reportError(err, `'${event}' listener`);
    }
  }

  private startGroupSweeper(): void {
    if (this.groupSweeper) return;
    const every = Math.min(Math.max(this.options.groupExpiryMs, 50), 60_000);
    this.groupSweeper = setInterval(() => this.sweepGroups(), every);
    this.groupSweeper.unref();
  }

  private sweepGroups(): void {
    const now = Date.now();
    for (const [name, members] of [...this.groups]) {
      for (const [member, expiresAt] of [...members])
        if (expiresAt <= now) void this.leave(name, member);
    }
    if (this.groups.size === 0) this.stopGroupSweeper();
  }

  private stopGroupSweeper(): void {
    if (this.groupSweeper) clearInterval(this.groupSweeper);
    this.groupSweeper = undefined;
  }
}
