/**
 * Script calls and sharded publishes on a Redis Cluster, written straight to the connection of
 * the node serving their slot, batched per turn (turn-cork.ts): one writev per node per turn.
 *
 * Why not through the cluster client: its auto-pipeline files EVALSHA under the slot of its key
 * count (cluster-shards.ts) and does not follow MOVED for SPUBLISH (pubsub-cluster.ts); written
 * one by one, a group send to 1,000 members on 16 slots was 16 writes and 0.57× the speed of 3
 * standalone hosts. A Pipeline per node and turn fixed the writes but cost a Pipeline object
 * and the cluster's routing per command: 64 publishes in flight were 0.48× of 3 hosts, twice
 * the client CPU per message. Here a call costs what it costs on a standalone host.
 *
 * Every call holds keys of one slot. A call meeting a node that is not ready, a slot the
 * cluster does not know, or a redirection in reply (MOVED, ASK, TRYAGAIN, CLUSTERDOWN: a slot
 * moving, a master being replaced) goes (again) through the cluster client, which follows
 * redirections and learns the new slot map from them. One slot's calls stay in call order:
 * they are written to one connection, and its redirected replies come back, and are sent
 * again, in that order.
 */
import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { errorMessage } from '../errors.ts';
import { clusterNode, socketOf } from './ioredis-internals.ts';
import { SCRIPTS } from './script-calls.ts';
import { scriptCommand } from './scripts.ts';
import { corkForTurn } from './turn-cork.ts';

type Call = (...args: unknown[]) => Promise<unknown>;

const REDIRECTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;

/**
 * The client methods written straight to a node, and where their key is among the arguments:
 * a script's (the command, and its Buffer-replying variant) after the key count, SPUBLISH's
 * channel first.
 */
const DIRECT = new Map<string, number>([
  ...SCRIPTS.flatMap((spec) => [
    [scriptCommand(spec), 1] as const,
    [`${scriptCommand(spec)}Buffer`, 1] as const,
  ]),
  ['spublish', 0],
]);

export class NodeWrites {
  /**
   * What a command runs on: the cluster client, except that script calls and SPUBLISH go
   * straight to their node. (Typed as a Redis client: the layer's code runs on either.)
   */
  readonly client: Redis;
  private readonly methods = new Map<string, Call>();

  constructor(private readonly cluster: Cluster) {
    const commands = cluster as unknown as Record<string | symbol, unknown>;
    this.client = new Proxy(cluster, {
      get: (target, prop) => {
        if (typeof prop === 'string' && DIRECT.has(prop)) return this.method(prop);
        const value = commands[prop];
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as unknown as Redis;
  }

  private method(name: string): Call {
    let call = this.methods.get(name);
    if (call === undefined) {
      call = (...args: unknown[]) => this.call(name, args);
      this.methods.set(name, call);
    }
    return call;
  }

  private call(method: string, args: unknown[]): Promise<unknown> {
    const key = args[DIRECT.get(method)!];
    return this.write(calculateSlot(Buffer.isBuffer(key) ? key : String(key)), method, args);
  }

  /** Runs client method `method` (one of DIRECT's) whose keys are all in `slot`. */
  write(slot: number, method: string, args: unknown[]): Promise<unknown> {
    const node = this.cluster.slots[slot]?.[0];
    const redis = node === undefined ? undefined : clusterNode(this.cluster, node);
    if (redis?.status !== 'ready') return this.viaCluster(method, args);
    corkForTurn(socketOf(redis));
    // The cluster's method (a script's runs EVALSHA, and EVAL on NOSCRIPT) on the node's client.
    return this.command(method)
      .apply(redis, args)
      .catch((err: unknown) => {
        if (REDIRECTED.test(errorMessage(err))) return this.viaCluster(method, args);
        throw err;
      });
  }

  private viaCluster(method: string, args: unknown[]): Promise<unknown> {
    return this.command(method).apply(this.cluster, args);
  }

  private command(method: string): Call {
    return (this.cluster as unknown as Record<string, Call>)[method]!;
  }
}
