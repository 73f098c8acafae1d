/**
 * The seam between a Redis layer and the servers it talks to. Both Redis layers ask a shard set
 * the same questions — where does a key live, run this there, what went wrong, is it up — and
 * never listen to a connection themselves; the answers differ by deployment:
 * - `HostShards` (host-shards.ts): the `hosts` entries, each a server or a Sentinel group, names
 *   placed by channels_redis's crc32 (or the hash ring);
 * - `ClusterShards` (cluster-shards.ts): one Redis Cluster, keys placed by its slots.
 *
 * Connection events reach the layer through `ShardSetEvents` (BaseLayer.shardEvents), which
 * counts them and emits them without letting a throwing listener break connection handling.
 */
import type { Redis } from 'ioredis';
import type { HostEntry } from '../config.ts';
import { ClusterShards } from './cluster-shards.ts';
import { HostShards, type HostShardsOptions } from './host-shards.ts';
import { clusterOf } from './hosts.ts';
import type { ShardHealth } from './health.ts';
import type { TargetsOf } from './reader.ts';
import type { MasterAddress } from './sentinel-watch.ts';

/** The servers before and after a failover. */
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
  trouble(source: TroubleSource): { reset(): void };
  /** A background failure (never thrown). */
  report(err: unknown, context: string): void;
  /** The error every failure becomes once the layer is closed; undefined while open. */
  closedError(): Error | undefined;
}

/** What connection errors come from: a shard, or a cluster. */
export interface TroubleSource {
  /** Emits 'ready' once the server was reached. */
  readonly client: { once(event: 'ready', listener: () => void): unknown };
  /** Each failure to connect, as the error a caller would get. */
  on(event: 'connectionError', listener: (err: Error) => void): unknown;
}

export interface ShardSet {
  /** How many places keys are spread over: shards, or a cluster's slots. */
  readonly size: number;
  /** The server places keys (a cluster): the layer cannot choose a place for a key itself. */
  readonly placesKeys: boolean;
  /** Where key `key` of name `name` (a queue's non-local name, a group) lives. */
  index(name: string, key: string): number;
  /** Every place a queue key may hold messages (hosts: every shard; a cluster: its slot). */
  everywhere(key: string): readonly number[];
  /** Runs `work` at place `index` once it is usable; failures come back as `failure()` makes them. */
  run<T>(index: number, work: (client: Redis) => Promise<T>): Promise<T>;
  /** A failure as the caller gets it: the layer is closed, or what is known of it, naming the place. */
  failure(index: number, err: unknown, command?: string): unknown;
  /** Deletes every key matching SCAN pattern `pattern` on every master (SCAN, never KEYS). */
  deleteMatching(pattern: string): Promise<void>;
  /** Each server's state (PING, role), within `timeoutMs`; never rejects. */
  health(timeoutMs: number): Promise<ShardHealth[]>;
  /** Where the core layer's reader reads each key, with wake keys built from `wakeKey`. */
  readTargets(wakeKey: string): TargetsOf;
  close(): void;
}

/** The shard set for `hosts`: one Redis Cluster (its only entry), or hosts and Sentinel groups. */
export function createShardSet(
  hosts: readonly HostEntry[],
  opts: HostShardsOptions,
  events: ShardSetEvents,
): ShardSet {
  const cluster = clusterOf(hosts);
  return cluster ? new ClusterShards(cluster, opts, events) : new HostShards(hosts, opts, events);
}
