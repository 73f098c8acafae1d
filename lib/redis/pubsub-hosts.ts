/**
 * Pub/Sub over the `hosts` entries (pubsub-transport.ts): per shard, PUBLISH on its command
 * connection (publisher.ts: one writev per turn, never queued behind a SUBSCRIBE) and the
 * subscriptions on its one subscriber connection (subscriber.ts). A shard is up once its
 * subscriber connection has subscribed everything again.
 */
import type { Redis } from 'ioredis';
import type { HostEntry } from '../config.ts';
import { HostShards } from './host-shards.ts';
import type { ShardHealth } from './health.ts';
import { Publisher } from './publisher.ts';
import type { PubSubTransport, PubSubTransportOptions } from './pubsub-transport.ts';
import type { Shard } from './shard.ts';
import type { ShardSetEvents } from './shard-set.ts';
import { shardSubscriber, Subscriptions } from './subscriber.ts';

export class HostPubSub implements PubSubTransport {
  private readonly shards: HostShards;
  readonly subscriptions: readonly Subscriptions[];
  /** Per shard: its subscriber connection. */
  readonly subscriberClients: readonly Redis[];
  private readonly publishers: readonly Publisher[];
  /** Per shard: turns a failed PUBLISH into the error send()/groupSend() reject with. */
  private readonly publishFailed: ReadonlyArray<(err: unknown) => never>;

  constructor(
    hosts: readonly HostEntry[],
    private readonly opts: PubSubTransportOptions,
    events: ShardSetEvents,
  ) {
    this.shards = new HostShards(
      hosts,
      {
        sharding: opts.sharding,
        commandTimeoutMs: opts.commandTimeoutMs,
        // A PUBLISH that timed out or was cut off is never sent later behind the caller's back
        // (ioredis's offline queue / resend); publish() awaits whenReady() instead.
        failFast: true,
        tracked: ['command', 'subscriber'],
        // Subscriptions resubscribe everything as the connection becomes ready: the shard is
        // up once that is done.
        whenUp: (index, role) =>
          role === 'subscriber' ? this.subscriptions[index]!.resubscribed() : Promise.resolve(),
      },
      events,
    );
    const { shards } = this.shards;
    this.publishers = shards.map((shard) => new Publisher(shard.client));
    this.publishFailed = shards.map((shard) => (err: unknown): never => {
      throw this.shards.failure(shard.index, err, 'the PUBLISH');
    });
    const ports = shards.map((shard) => shardSubscriber(shard, opts.onMessage));
    this.subscriberClients = ports.map((port) => port.client);
    this.subscriptions = ports.map(
      (port, i) =>
        new Subscriptions(port, (err, context) => opts.onError(err, `shard ${i}: ${context}`)),
    );
  }

  subscriptionsOf(name: string): Subscriptions {
    return this.subscriptions[this.shards.index(name)]!;
  }

  index(name: string): number {
    return this.shards.index(name);
  }

  /**
   * PUBLISH on the shard's command connection, once it is ready: within `commandTimeoutMs`
   * it resolves (Redis took the message; `sent` runs) or rejects with an error naming the shard.
   */
  publish(name: string, payload: Buffer, sent: () => void): Promise<void> {
    const shard = this.shards.shards[this.shards.index(name)]!;
    // Ready (the usual case): the PUBLISH settles on its own — failFast rejects it as soon as
    // the connection drops, close() included, and commandTimeout bounds it — so it needs no
    // `closing` wait (a Set entry and a promise per message).
    if (shard.client.status === 'ready') {
      return this.publishers[shard.index]!.publish(name, payload).then(
        sent,
        this.publishFailed[shard.index],
      );
    }
    return this.publishWhenReady(shard, name, payload, sent);
  }

  unconfirmed(name: string, detail: string): Error {
    return this.shards.shards[this.shards.index(name)]!.unreachable(detail);
  }

  subscriberDown(): boolean {
    return this.shards.isDown('subscriber');
  }

  health(timeoutMs: number): Promise<ShardHealth[]> {
    return this.shards.health(timeoutMs);
  }

  close(): void {
    for (const subs of this.subscriptions) subs.close();
    this.shards.close();
  }

  private async publishWhenReady(
    shard: Shard,
    name: string,
    payload: Buffer,
    sent: () => void,
  ): Promise<void> {
    const { closing } = this.opts;
    try {
      await closing.until(shard.whenReady());
      await closing.until(this.publishers[shard.index]!.publish(name, payload));
    } catch (err) {
      this.publishFailed[shard.index]!(err);
    }
    sent();
  }
}
