/**
 * What the core layer does about the messages of process-local channels it deleted.
 *
 * Every `…!` channel of one newChannel prefix shares one queue key, and so one capacity (as in
 * channels_redis). Messages still queued for a deleted channel would hold places in it until
 * `expiry`, and the reader pops nothing from a key nobody in the process waits on: the live
 * channels' sends were refused meanwhile (a soak saw every send of the process refused for
 * ~60 s). So `deleteChannel` removes them from Redis (`QueuePurge`), and one popped later (sent
 * around or after the delete) is dropped by the layer (`DeletedChannels.has`), both counted.
 */
import type { Redis } from 'ioredis';

/** Most deleted names remembered (see DeletedChannels). */
const DELETED_LIMIT = 10_000;

/**
 * Process-local channels deleted within the last `windowMs` (the layer's expiry: whatever was
 * sent before a delete has expired by the time it is forgotten here), at most `limit` of them:
 * a process deleting thousands of channels a second would otherwise keep hundreds of thousands
 * of names for a minute. A message for a name forgotten early is buffered like one for any
 * idle channel, bounded by capacity and expiring, as before.
 *
 * Forgetting goes oldest first, from a queue beside the lookup map: iterating a Map from its
 * start walks over the slots of every entry deleted since its last rehash, which made each
 * delete cost thousands of steps.
 */
export class DeletedChannels {
  /** channel → when it was deleted (last time). */
  private readonly deletedAt = new Map<string, number>();
  /** Every delete in order (a name deleted twice is in it twice; its older entry is stale). */
  private order: Array<{ channel: string; at: number }> = [];
  private head = 0;

  constructor(
    private readonly windowMs: number,
    private readonly limit = DELETED_LIMIT,
  ) {}

  add(channel: string, now = Date.now()): void {
    this.deletedAt.set(channel, now);
    this.order.push({ channel, at: now });
    while (this.head < this.order.length) {
      const oldest = this.order[this.head]!;
      if (oldest.at > now - this.windowMs && this.order.length - this.head <= this.limit) break;
      if (this.deletedAt.get(oldest.channel) === oldest.at) this.deletedAt.delete(oldest.channel);
      this.head++;
    }
    // Compact now and then instead of Array#shift's O(n) per name.
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
  }

  has(channel: string): boolean {
    if (this.deletedAt.size === 0) return false;
    const at = this.deletedAt.get(channel);
    return at !== undefined && at > Date.now() - this.windowMs;
  }

  /** The channel is received on again: it lives. */
  revive(channel: string): void {
    if (this.deletedAt.size !== 0) this.deletedAt.delete(channel);
  }
}

/** Largest member whose channels a purge remembers between passes (keyed by its bytes). */
const REMEMBER_BYTES = 1024;

/**
 * Removes from one process queue (one key on one shard) the members whose channels are all
 * deleted. A pass reads the whole queue (`ZRANGE`) and removes each doomed member with its own
 * `ZREM`, so one the reader popped meanwhile is not counted here (the layer counts it when it
 * routes it). What each member is for is remembered from the last pass: a queue holding messages
 * for a live channel that is not reading is not decoded again at every delete (99 queued
 * messages took 1.2 ms per delete to decode, 4.1 ms with Fernet).
 */
export class QueuePurge {
  /** Member bytes (latin1) → the queue's channels it is for, as of the last pass. */
  private known = new Map<string, readonly string[]>();

  constructor(
    /** The channels of this queue a member is for ([] when it cannot be decoded). */
    private readonly channelsOf: (member: Buffer) => readonly string[],
    private readonly isDeleted: (channel: string) => boolean,
  ) {}

  /** One pass; returns how many deliveries it dropped (a member's deleted channels each). */
  async run(client: Redis, key: string): Promise<number> {
    const known = new Map<string, readonly string[]>();
    const doomed: Array<[Buffer, number]> = [];
    for (const member of await client.zrangeBuffer(key, 0, -1)) {
      const id = member.length <= REMEMBER_BYTES ? member.toString('latin1') : undefined;
      const channels =
        (id === undefined ? undefined : this.known.get(id)) ?? this.channelsOf(member);
      if (id !== undefined) known.set(id, channels);
      if (channels.length > 0 && channels.every(this.isDeleted)) {
        doomed.push([member, channels.length]);
      }
    }
    this.known = known;
    const removed = await Promise.all(doomed.map(([member]) => client.zrem(key, member)));
    return doomed.reduce((sum, [, channels], i) => sum + (removed[i] === 1 ? channels : 0), 0);
  }
}
