/**
 * The shards a Redis layer talks to, and what both Redis layers do with them alike:
 * - `hosts` entries → one `Shard` each (hosts.ts: a URL, an address, a Sentinel group);
 * - which shard a name lives on (placement.ts: channels_redis's crc32, or the hash ring);
 * - running a command on a shard once it is connected and its version checked, and turning a
 *   failure into the error the caller gets (naming the shard; "closed" after close());
 * - a shard's connection events → the layer's: a shard is down while any connection the layer
 *   relies on is down, and up once all of them are back (for a subscriber connection: once it
 *   has subscribed everything again); a Sentinel shard back on another master is a failover.
 *
 * Both layers build one and never touch `Shard` events themselves, so a listener that throws is
 * handled in one place (`ShardSetEvents`, implemented once by BaseLayer). A Redis Cluster is the
 * other kind of shard set the layers are meant to run on: same questions (where does a name live,
 * run this there, what went wrong, is it up), different answers.
 */
import type { Redis } from 'ioredis';
import type { HostEntry } from '../config.ts';
import { parseHost } from './hosts.ts';
import { crc32Placement, ringPlacement, type Placement } from './placement.ts';
import type { MasterAddress } from './sentinel-watch.ts';
import { Shard, type Role, type ShardOptions } from './shard.ts';

/** The servers before and after a Sentinel failover. */
export interface MasterChange {
  from: MasterAddress;
  to: MasterAddress;
}

/** What a shard set tells its layer (BaseLayer.shardEvents implements it). */
export interface ShardSetEvents {
  disconnect(index: number): void;
  reconnect(index: number): void;
  failover(index: number, change: MasterChange): void;
  /** Per shard: reports connection errors, once per outage until `reset()`. */
  trouble(shard: Shard): { reset(): void };
  /** A background failure (never thrown). */
  report(err: unknown, context: string): void;
  /** The error every failure becomes once the layer is closed; undefined while open. */
  closedError(): Error | undefined;
}

export interface ShardSetOptions extends ShardOptions {
  sharding: 'crc32' | 'ring';
  /** Connections whose loss makes a shard down (default: the command connection). */
  tracked?: readonly Role[];
  /** A tracked connection is back: resolves once it is usable again (Pub/Sub: resubscribed). */
  whenUp?: (index: number, role: Role) => Promise<void>;
}

/** Per shard: which tracked connections are down; per role, a counter that outdates a pending 'up'. */
interface Health {
  readonly down: Set<Role>;
  readonly epochs: Map<Role, number>;
  readonly trouble: { reset(): void };
}

function bump(health: Health, role: Role): number {
  const epoch = (health.epochs.get(role) ?? 0) + 1;
  health.epochs.set(role, epoch);
  return epoch;
}

export class ShardSet {
  readonly shards: readonly Shard[];
  private readonly placement: Placement;
  /** Shards whose server version was checked (ensureVersion resolved): the hot path of run(). */
  private readonly verified: boolean[] = [];

  constructor(
    hosts: readonly HostEntry[],
    opts: ShardSetOptions,
    private readonly events: ShardSetEvents,
  ) {
    const specs = hosts.map((entry, i) => parseHost(entry, i));
    this.placement =
      opts.sharding === 'ring'
        ? ringPlacement(specs.map((s) => s.id))
        : crc32Placement(specs.length);
    const tracked = new Set<Role>(opts.tracked ?? ['command']);
    this.shards = specs.map((spec, i) => {
      const shard = new Shard(i, spec, opts);
      const health: Health = { down: new Set(), epochs: new Map(), trouble: events.trouble(shard) };
      shard.on('down', (role: Role) => {
        if (tracked.has(role)) this.down(i, role, health);
      });
      shard.on('up', (role: Role) => {
        if (tracked.has(role)) this.up(i, role, health, opts.whenUp);
      });
      shard.on('failover', (change: MasterChange) => {
        if (!events.closedError()) events.failover(i, change);
      });
      return shard;
    });
  }

  /** Number of shards (hosts entries). */
  get size(): number {
    return this.shards.length;
  }

  /** The index of the shard `name` (a queue's non-local name, a group, a Redis channel) lives on. */
  index(name: string): number {
    return this.placement.index(name);
  }

  /**
   * Runs `work` with shard `index`'s command client, once its version is checked. Failures come
   * back as `failure()` makes them.
   */
  run<T>(index: number, work: (client: Redis) => Promise<T>): Promise<T> {
    const shard = this.shards[index]!;
    // Hot path (every send): connected and checked, so no extra awaits per command.
    if (this.verified[index] === true && shard.client.status === 'ready') {
      try {
        return work(shard.client).catch((err: unknown) => {
          throw this.failure(index, err);
        });
      } catch (err) {
        return Promise.reject(this.failure(index, err));
      }
    }
    return this.runConnecting(index, work);
  }

  /**
   * A command failure as the error to give the caller: the layer is closed, or what the shard
   * knows about it (`Shard.explain`: timeout, lost in flight, not connected, or Redis's reply).
   */
  failure(index: number, err: unknown, command?: string): unknown {
    return this.events.closedError() ?? this.shards[index]!.explain(err, command);
  }

  close(): void {
    for (const shard of this.shards) shard.close();
  }

  private async runConnecting<T>(index: number, work: (client: Redis) => Promise<T>): Promise<T> {
    const shard = this.shards[index]!;
    try {
      await shard.whenReady();
      await shard.ensureVersion();
      this.verified[index] = true;
      return await work(shard.client);
    } catch (err) {
      throw this.failure(index, err);
    }
  }

  private down(index: number, role: Role, health: Health): void {
    if (this.events.closedError()) return;
    bump(health, role);
    const wasUp = health.down.size === 0;
    health.down.add(role);
    if (wasUp) this.events.disconnect(index);
  }

  private up(index: number, role: Role, health: Health, whenUp: ShardSetOptions['whenUp']): void {
    if (this.events.closedError()) return;
    if (whenUp === undefined) {
      this.markUp(index, role, health);
      return;
    }
    const epoch = bump(health, role);
    whenUp(index, role).then(
      () => {
        if (epoch === health.epochs.get(role)) this.markUp(index, role, health);
      },
      (err: unknown) => {
        // The connection dropped again meanwhile; its next 'up' starts over.
        if (!this.events.closedError() && epoch === health.epochs.get(role))
          this.events.report(err, `shard ${index}: ${role} connection back`);
      },
    );
  }

  private markUp(index: number, role: Role, health: Health): void {
    if (this.events.closedError()) return;
    if (!health.down.delete(role) || health.down.size > 0) return;
    health.trouble.reset();
    this.events.reconnect(index);
  }
}
