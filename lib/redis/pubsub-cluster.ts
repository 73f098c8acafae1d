/**
 * Pub/Sub on one Redis Cluster (pubsub-transport.ts), under channels_redis's names (no hash
 * tags). Sharded by default: SPUBLISH to the channel's slot owner, SSUBSCRIBE through ioredis's
 * sharded subscribers (one connection per master), one slot's names per command (ioredis
 * refuses channels of several slots in one). `clusterPubSub: 'global'`: PUBLISH and SUBSCRIBE
 * (one subscriber connection; every publish crosses the cluster bus to every node).
 *
 * Connections, events and failures are ClusterShards's (the cluster is shard 0); resubscribing
 * after a failover is ioredis's, and after a slot move ClusterShards makes it happen.
 */
import calculateSlot from 'cluster-key-slot';
import { Command, type Cluster, type Redis } from 'ioredis';
import { ClusterShards } from './cluster-shards.ts';
import type { ShardHealth } from './health.ts';
import { useHelloReadyCheck } from './hello.ts';
import type { ClusterSpec } from './hosts.ts';
import { prepareGlobalSubscriber, shardedMessagesAsBuffers } from './ioredis-internals.ts';
import type { PubSubTransport, PubSubTransportOptions } from './pubsub-transport.ts';
import type { ShardSetEvents } from './shard-set.ts';
import { chunked, Subscriptions, type SubscriberPort } from './subscriber.ts';

const noop = (): void => {};

/** `names` by slot, each slot's in chunks: what one SSUBSCRIBE may carry. */
function bySlot(names: string[]): string[][] {
  const slots = new Map<number, string[]>();
  for (const name of names) {
    const slot = calculateSlot(name);
    const same = slots.get(slot);
    if (same) same.push(name);
    else slots.set(slot, [name]);
  }
  return [...slots.values()].flatMap(chunked);
}

/**
 * The cluster client as Subscriptions' port, sharded or global. A failed (S)SUBSCRIBE rejects
 * with `explain`'s error (ConnectionError naming the slot), not ioredis's bare text.
 */
function clusterSubscriber(
  client: Cluster,
  sharded: boolean,
  onMessage: (name: Buffer, payload: Buffer) => void,
  explain: (name: string, err: unknown, command: string) => unknown,
): SubscriberPort {
  client.on(sharded ? 'smessageBuffer' : 'messageBuffer', onMessage);
  if (sharded) shardedMessagesAsBuffers(client);
  else prepareGlobalSubscriber(client, useHelloReadyCheck);
  const command = sharded ? 'the SSUBSCRIBE' : 'the SUBSCRIBE';
  return {
    get status() {
      return client.status;
    },
    onReady: (listener) => client.prependListener('ready', listener),
    resubscribes: true,
    subscribe: (names) =>
      (sharded ? client.ssubscribe(...names) : client.subscribe(...names)).catch((err: unknown) => {
        // ioredis lists sharded names for resubscription before the command is sent: a
        // failed SSUBSCRIBE must not come back behind the layer's back.
        if (sharded) client.sunsubscribe(...names).catch(noop);
        throw explain(names[0]!, err, command);
      }),
    unsubscribe: (name) => (sharded ? client.sunsubscribe(name) : client.unsubscribe(name)),
    batches: sharded ? bySlot : chunked,
  };
}

const nodeKey = (node: Redis): string => `${node.options.host}:${node.options.port}`;

/**
 * The connection a global PUBLISH of a slot's channel goes to: one and the same while it lives,
 * so one channel's messages never cross the cluster bus on different links (out of order).
 * ioredis sends a command without keys to a random node. The slot's master; while it is down
 * (global Pub/Sub does not need it), the first live master by address.
 */
function globalTarget(cluster: Cluster, slot: number): Redis | undefined {
  const owner = cluster.slots[slot]?.[0];
  let fallback: Redis | undefined;
  for (const node of cluster.nodes('master')) {
    if (node.status === 'end' || node.status === 'close') continue;
    if (nodeKey(node) === owner) return node;
    if (node.status === 'ready' && (!fallback || nodeKey(node) < nodeKey(fallback)))
      fallback = node;
  }
  return fallback;
}

/**
 * PUBLISH through globalTarget (`node` is Cluster.sendCommand's routing argument, as its own
 * pipelines use it).
 */
function globalPublish(
  client: Redis,
  slot: number,
  name: string,
  payload: Buffer,
): Promise<unknown> {
  const cluster = client as unknown as Cluster;
  const command = new Command('publish', [name, payload]);
  cluster.sendCommand(command, undefined, { slot, redis: globalTarget(cluster, slot) });
  return command.promise;
}

export class ClusterPubSub implements PubSubTransport {
  private readonly shards: ClusterShards;
  readonly subscriptions: readonly Subscriptions[];
  private readonly sharded: boolean;

  constructor(spec: ClusterSpec, opts: PubSubTransportOptions, events: ShardSetEvents) {
    this.sharded = opts.clusterPubSub === 'sharded';
    this.shards = new ClusterShards(
      spec,
      { commandTimeoutMs: opts.commandTimeoutMs, pubsub: opts.clusterPubSub },
      events,
    );
    const port = clusterSubscriber(
      this.shards.client,
      this.sharded,
      opts.onMessage,
      (name, err, command) => this.shards.failure(calculateSlot(name), err, command),
    );
    this.subscriptions = [
      new Subscriptions(port, (err, context) => opts.onError(err, `Redis Cluster: ${context}`)),
    ];
  }

  subscriptionsOf(): Subscriptions {
    // The client connects on first use (a publish connects it through run()); subscriptions
    // wait for its 'ready'. A failure to connect is reported by the connection events.
    if (this.shards.client.status === 'wait') this.shards.whenReady().catch(noop);
    return this.subscriptions[0]!;
  }

  index(): number {
    return 0;
  }

  publish(name: string, payload: Buffer, sent: () => void): Promise<void> {
    const slot = calculateSlot(name);
    return this.shards
      .run(
        slot,
        (client: Redis) =>
          this.sharded
            ? this.shards.writes.write(slot, 'spublish', [name, payload])
            : globalPublish(client, slot, name, payload),
        this.sharded ? 'the SPUBLISH' : 'the PUBLISH',
      )
      .then(sent);
  }

  unconfirmed(name: string, detail: string): Error {
    return this.shards.unreachable(`slot ${calculateSlot(name)}: ${detail}`);
  }

  subscriberDown(): boolean {
    return this.shards.isDown();
  }

  health(timeoutMs: number): Promise<ShardHealth[]> {
    return this.shards.health(timeoutMs);
  }

  close(): void {
    this.subscriptions[0]!.close();
    this.shards.close();
  }
}
