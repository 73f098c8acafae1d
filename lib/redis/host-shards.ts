/**
 * A shard set over the `hosts` entries (shard-set.ts): one `Shard` each (a URL, an address, a
 * Sentinel group), names placed by channels_redis's crc32 or the hash ring (placement.ts). A
 * shard is down while any connection the layer relies on is down, and up once all of them are
 * back (for a subscriber connection: once it has subscribed everything again); a Sentinel shard
 * back on another master is a failover.
 */
import type { Redis } from 'ioredis';
import type { HostEntry } from '../config.ts';
import { shardHealth, type ShardHealth } from './health.ts';
import { parseHost } from './hosts.ts';
import { crc32Placement, ringPlacement, type Placement } from './placement.ts';
import type { ReadTarget, TargetsOf } from './reader.ts';
import { restoreInflightScript } from './script-calls.ts';
import { Shard, type Role, type ShardOptions } from './shard.ts';
import type { MasterChange, ShardSet, ShardSetEvents } from './shard-set.ts';
import { wake } from './wake.ts';

/** Keys per UNLINK in deleteMatching, and the SCAN COUNT hint. */
const SCAN_BATCH = 1000;

export interface HostShardsOptions extends ShardOptions {
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

export class HostShards implements ShardSet {
  readonly shards: readonly Shard[];
  private readonly indices: readonly number[];
  /** Per shard: which of its tracked connections are down. */
  private readonly states: Health[] = [];
  private readonly placement: Placement;
  /** Shards whose server version was checked (ensureVersion resolved): the hot path of run(). */
  private readonly verified: boolean[] = [];

  constructor(
    hosts: readonly HostEntry[],
    opts: HostShardsOptions,
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
      this.states.push(health);
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
    this.indices = this.shards.map((shard) => shard.index);
  }

  readonly placesKeys = false;

  get size(): number {
    return this.shards.length;
  }

  /** Placed by name, as channels_redis does (a queue's non-local name, a group, a Redis channel). */
  index(name: string): number {
    return this.placement.index(name);
  }

  /**
   * Every shard: channels_redis places a process queue by the full channel name (upstream #221)
   * and round-robins normal channels, so either may be on any shard.
   */
  everywhere(): readonly number[] {
    return this.indices;
  }

  async deleteMatching(pattern: string): Promise<void> {
    await Promise.all(
      this.indices.map((index) =>
        this.run(index, async (client) => {
          let cursor = '0';
          do {
            const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_BATCH);
            cursor = next;
            if (keys.length > 0) await client.unlink(...keys);
          } while (cursor !== '0');
        }),
      ),
    );
  }

  health(timeoutMs: number): Promise<ShardHealth[]> {
    return Promise.all(this.shards.map((shard) => shardHealth(shard, timeoutMs)));
  }

  /** Whether a connection of `role` is down on any shard (Pub/Sub: its subscribers). */
  isDown(role: Role): boolean {
    return this.states.some((health) => health.down.has(role));
  }

  /** Every key is read on every shard (see everywhere()). */
  readTargets(wakeKey: string): TargetsOf {
    const targets = this.shards.map((shard) => shardTarget(shard, wakeKey));
    return () => targets;
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

  private up(index: number, role: Role, health: Health, whenUp: HostShardsOptions['whenUp']): void {
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

/** A shard as the reader sees it: its blocking connections, wake key and reconnect pace. */
function shardTarget(shard: Shard, wakeKey: string): ReadTarget {
  return {
    index: shard.index,
    label: `shard ${shard.index}`,
    wakeKey,
    async ready() {
      await shard.whenReady();
      await shard.ensureVersion();
    },
    connect: (options) => shard.connect('blocking', options),
    release: (conn) => shard.release(conn),
    wake: () => wake(shard.client, wakeKey),
    restoreInflight: restoreInflightScript,
    retryDelay: (attempt) => shard.retryDelay(attempt),
    onBack(listener) {
      shard.on('up', listener);
      shard.on('switch', listener);
      return () => {
        shard.off('up', listener);
        shard.off('switch', listener);
      };
    },
  };
}
