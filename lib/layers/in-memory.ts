/**
 * Single-process layer with the same semantics as the Redis layers: capacity, expiry, groups,
 * process-specific channels. Messages pass through the configured serializer, so what it
 * accepts, refuses and copies is exactly what a Redis layer would.
 */
import type { HealthReport } from '../redis/health.ts';
import { ChannelFull, LayerClosed } from '../errors.ts';
import type { LayerOptions } from '../config.ts';
import { ExpiringMemberships } from '../memberships.ts';
import { Mailboxes } from '../mailboxes.ts';
import {
  assertChannelName,
  assertGroupName,
  assertOwnChannel,
  newProcessChannel,
  uuidHex,
} from '../names.ts';
import { assertMessage } from '../serde/codec.ts';
import type { ChannelLayer, Message, ReceiveOptions } from '../types.ts';
import { BaseLayer } from './base.ts';

export type InMemoryOptions = Omit<LayerOptions, 'hosts' | 'sharding' | 'randomPrefixLength'>;

export class InMemoryChannelLayer<M extends Message = Message>
  extends BaseLayer
  implements ChannelLayer<M>
{
  private readonly clientPrefix = uuidHex();
  private readonly mailboxes: Mailboxes<Buffer>;
  private readonly groups: ExpiringMemberships;

  constructor(options: InMemoryOptions = {}) {
    super(options, () => ({ prefixLength: 0 }));
    this.mailboxes = new Mailboxes<Buffer>({
      expiryMs: this.options.expiryMs,
      onExpired: (n) => this.count('expired', n),
    });
    this.groups = new ExpiringMemberships(this.options.groupExpiryMs, (group, channel) =>
      this.groups.remove(group, channel),
    );
  }

  async send(channel: string, message: M): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    assertMessage(message);
    const payload = this.codec.encode(message);
    const capacity = this.capacityFor(channel);
    if (this.mailboxes.put(channel, payload, capacity, 'reject') === 'full') {
      this.count('capacityRejected');
      throw new ChannelFull(channel, capacity);
    }
    this.count('sent');
  }

  async receive(channel: string, opts: ReceiveOptions = {}): Promise<M> {
    this.assertOpen();
    assertChannelName(channel);
    assertOwnChannel(channel, this.clientPrefix);
    for (;;) {
      const payload = await this.mailboxes.take(channel, opts.signal);
      try {
        const message = this.codec.decode(payload) as M;
        this.count('received');
        return message;
      } catch (err) {
        // Only a custom serializer that can't read its own output gets here; skip like Redis.
        this.count('unreadable');
        this.reportError(err, `skipped unreadable message on ${channel}`);
      }
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
    // Re-adding refreshes the membership's expiry, as a ZADD does in Redis.
    this.groups.add(group, channel);
  }

  async groupDiscard(group: string, channel: string): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertChannelName(channel);
    this.groups.remove(group, channel);
  }

  async groupSend(group: string, message: M): Promise<void> {
    this.assertOpen();
    assertGroupName(group);
    assertMessage(message);
    const payload = this.codec.encode(message);
    this.count('groupSends');
    this.groups.expireNow(group);
    const members = this.groups.members(group);
    this.notify('groupFanOut', members?.size ?? 0);
    if (!members) return;
    for (const channel of members.keys()) {
      // Each member gets its own copy: payload bytes are decoded per receive.
      const result = this.mailboxes.put(channel, payload, this.capacityFor(channel), 'reject');
      this.count(result === 'full' ? 'groupDropped' : 'groupDeliveries');
    }
  }

  /** Forgets a channel: leaves every group and drops its buffered messages. */
  async deleteChannel(channel: string): Promise<void> {
    this.assertOpen();
    assertChannelName(channel);
    this.groups.removeEverywhere(channel);
    this.count('deletedDropped', this.mailboxes.drop(channel));
  }

  async flush(): Promise<void> {
    this.assertOpen();
    this.mailboxes.clear();
    this.groups.clear();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.groups.clear();
    this.mailboxes.close(new LayerClosed(this.constructor.name));
  }

  /** The group's members whose membership has not expired. */
  async groupChannels(group: string): Promise<string[]> {
    this.assertOpen();
    assertGroupName(group);
    return this.groups.live(group);
  }

  /** How many members the group has (see groupChannels). */
  async groupSize(group: string): Promise<number> {
    return (await this.groupChannels(group)).length;
  }

  /** No servers: ok while open, with how long the oldest waiting receive has waited. */
  async health(): Promise<HealthReport> {
    return {
      ok: !this.closed,
      shards: [],
      reader: this.closed ? 'stopped' : 'running',
      oldestWaitMs: this.mailboxes.oldestWaitMs(),
    };
  }

  /** Channels holding buffered messages or waiters (for leak checks). */
  get activeChannels(): number {
    return this.mailboxes.channelCount;
  }
}
