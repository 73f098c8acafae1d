/**
 * Script calls, sharded publishes and the layer's single-key commands on a Redis Cluster,
 * written straight to the connection of the node serving their slot, batched per turn
 * (turn-cork.ts): one writev per node per turn.
 *
 * Why not through the cluster client: its auto-pipeline files EVALSHA under the slot of its key
 * count (cluster-shards.ts), does not follow MOVED for SPUBLISH (pubsub-cluster.ts), and holds
 * every command until setImmediate (a group send's members read left 0.2 ms later than on a
 * standalone host, which writes it at once: direct.ts). Written one by one, a group send to
 * 1,000 members on 16 slots was 16 writes and 0.57× the speed of 3 standalone hosts. A
 * Pipeline per node and turn fixed the writes but cost a Pipeline object and the cluster's
 * routing per command: 64 publishes in flight were 0.48× of 3 hosts, twice the client CPU per
 * message. Here a call costs what it costs on a standalone host.
 *
 * Every call holds keys of one slot. A call meeting a node that is not ready, a slot the
 * cluster does not know, or a redirection in reply (MOVED, ASK, TRYAGAIN, CLUSTERDOWN: a slot
 * moving, a master being replaced) goes (again) through the cluster client, which follows
 * redirections and learns the new slot map from them. One node's calls are written to one
 * connection in call order, and what comes back redirected is sent again in the order it came
 * back; a command that is not a script never overtakes a script call written before it, sent
 * again or not (NodeOrder).
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

/** A method written straight to a node: where its key is among its arguments; a script or not. */
interface Direct {
  keyAt: number;
  script: boolean;
}

/**
 * The client methods written straight to a node: a script's (the command, and its
 * Buffer-replying variant), key after the key count; SPUBLISH, and the single-key commands the
 * layer sends (a group's members read and trimmed, a member removed), key first.
 */
const DIRECT = new Map<string, Direct>([
  ...SCRIPTS.flatMap((spec) => [
    [scriptCommand(spec), { keyAt: 1, script: true }] as const,
    [`${scriptCommand(spec)}Buffer`, { keyAt: 1, script: true }] as const,
  ]),
  ...[
    'spublish',
    'zrangebyscore',
    'zrangebyscoreBuffer',
    'zrangeBuffer',
    'zremrangebyscore',
    'zrem',
  ].map((command) => [command, { keyAt: 0, script: false }] as const),
]);

/**
 * One node's order: a script call may be sent again after its reply (ioredis on NOSCRIPT, once
 * the node's script cache was flushed; this class on a redirection), so a command that is not
 * a script waits until the script calls written before it have settled, and everything issued
 * while one waits waits behind it — as ioredis's auto-pipeline holds a standalone host's next
 * batch (a groupAdd not awaited still comes before the groupSend issued after it). Script calls
 * meeting NOSCRIPT are all sent again, in order. Streams of script calls alone, or of SPUBLISH
 * alone, never wait.
 */
interface NodeOrder {
  /** Script calls written to the node and not settled. */
  scripts: number;
  /** Calls waiting their turn, in call order. */
  held: Array<{ script: boolean; send(): void }>;
}

export class NodeWrites {
  /**
   * What a command runs on: the cluster client, except that DIRECT's methods go straight to
   * their node. (Typed as a Redis client: the layer's code runs on either.)
   */
  readonly client: Redis;
  /** The client's methods as the proxy hands them out, made once each. */
  private readonly methods = new Map<string | symbol, Call>();
  /** Node ('host:port') → its order. */
  private readonly order = new Map<string, NodeOrder>();

  constructor(private readonly cluster: Cluster) {
    const commands = cluster as unknown as Record<string | symbol, unknown>;
    this.client = new Proxy(cluster, {
      get: (target, prop) => {
        const value = commands[prop];
        const direct = typeof prop === 'string' && DIRECT.has(prop);
        if (!direct && typeof value !== 'function') return value;
        let method = this.methods.get(prop);
        if (method === undefined) {
          method = direct
            ? (...args: unknown[]) => this.call(prop, args)
            : (value as Call).bind(target);
          this.methods.set(prop, method);
        }
        return method;
      },
    }) as unknown as Redis;
  }

  private call(method: string, args: unknown[]): Promise<unknown> {
    const key = args[DIRECT.get(method)!.keyAt];
    return this.write(calculateSlot(Buffer.isBuffer(key) ? key : String(key)), method, args);
  }

  /** Runs client method `method` (one of DIRECT's) whose keys are all in `slot`. */
  write(slot: number, method: string, args: unknown[]): Promise<unknown> {
    const node = this.cluster.slots[slot]?.[0];
    if (node === undefined) return this.viaCluster(method, args);
    let order = this.order.get(node);
    if (order === undefined) {
      order = { scripts: 0, held: [] };
      this.order.set(node, order);
    }
    const { script } = DIRECT.get(method)!;
    if (order.held.length === 0 && (script || order.scripts === 0)) {
      return this.send(node, order, method, args, script);
    }
    const waiting = order;
    return new Promise((resolve, reject) => {
      waiting.held.push({
        script,
        send: () => this.send(node, waiting, method, args, script).then(resolve, reject),
      });
    });
  }

  private send(
    node: string,
    order: NodeOrder,
    method: string,
    args: unknown[],
    script: boolean,
  ): Promise<unknown> {
    const redis = clusterNode(this.cluster, node);
    let sent: Promise<unknown>;
    if (redis?.status === 'ready') {
      corkForTurn(socketOf(redis));
      // The cluster's method (a script's runs EVALSHA, and EVAL on NOSCRIPT) on the node's client.
      sent = this.command(method)
        .apply(redis, args)
        .catch((err: unknown) => {
          if (REDIRECTED.test(errorMessage(err))) return this.viaCluster(method, args);
          throw err;
        });
    } else sent = this.viaCluster(method, args);
    if (!script) return sent;
    order.scripts++;
    return sent.finally(() => {
      if (--order.scripts === 0) this.release(order);
    });
  }

  /** Sends the held calls whose turn has come (a non-script one once no script is unsettled). */
  private release(order: NodeOrder): void {
    while (order.held.length > 0 && (order.held[0]!.script || order.scripts === 0)) {
      order.held.shift()!.send();
    }
  }

  private viaCluster(method: string, args: unknown[]): Promise<unknown> {
    return this.command(method).apply(this.cluster, args);
  }

  private command(method: string): Call {
    return (this.cluster as unknown as Record<string, Call>)[method]!;
  }
}
