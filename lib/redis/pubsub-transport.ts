/**
 * The seam between the Pub/Sub layer and where it publishes and subscribes: hosts (one
 * subscriber connection and one command connection per shard: pubsub-hosts.ts) or one Redis
 * Cluster (sharded or global Pub/Sub through its client: pubsub-cluster.ts). The layer keeps
 * channels, groups and mailboxes; a transport only moves names and payloads.
 */
import type { Closing } from '../closing.ts';
import type { HostShardsOptions } from './host-shards.ts';
import type { ShardHealth } from './health.ts';
import { clusterOf } from './hosts.ts';
import { ClusterPubSub } from './pubsub-cluster.ts';
import { HostPubSub } from './pubsub-hosts.ts';
import type { ShardSetEvents } from './shard-set.ts';
import type { Subscriptions } from './subscriber.ts';
import type { HostEntry } from '../config.ts';

export interface PubSubTransport {
  /** Where each Redis channel name is subscribed. */
  subscriptionsOf(name: string): Subscriptions;
  /** Every Subscriptions of the transport. */
  readonly subscriptions: readonly Subscriptions[];
  /** The shard (index in `hosts`) a Redis channel name lives on; a cluster is shard 0. */
  index(name: string): number;
  /**
   * Publishes once the place is usable; within `commandTimeoutMs` runs `sent` (Redis took the
   * message) or rejects with an error naming the place.
   */
  publish(name: string, payload: Buffer, sent: () => void): Promise<void>;
  /** The error for a subscription of `name` Redis did not confirm in time. */
  unconfirmed(name: string, detail: string): Error;
  /** Whether a connection messages arrive on is down. */
  subscriberDown(): boolean;
  health(timeoutMs: number): Promise<ShardHealth[]>;
  close(): void;
}

export interface PubSubTransportOptions extends HostShardsOptions {
  clusterPubSub: 'sharded' | 'global';
  /** Where Redis's messages go (name, payload). */
  onMessage(name: Buffer, payload: Buffer): void;
  /** A background failure of a subscription (never thrown). */
  onError(err: unknown, context: string): void;
  /** The layer's waits that close() cuts short. */
  closing: Closing;
}

/** The transport for `hosts`: one Redis Cluster (its only entry), or hosts and Sentinel groups. */
export function createPubSubTransport(
  hosts: readonly HostEntry[],
  opts: PubSubTransportOptions,
  events: ShardSetEvents,
): PubSubTransport {
  const cluster = clusterOf(hosts);
  return cluster ? new ClusterPubSub(cluster, opts, events) : new HostPubSub(hosts, opts, events);
}
