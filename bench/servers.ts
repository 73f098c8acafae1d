/** The fresh redis-servers (and Redis Cluster) a bench run uses, from the shared test harness. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startCluster, type Cluster } from '../test/harness/cluster.ts';
import { redisCommand, startRedis, type RedisGroup } from '../test/harness/redis.ts';
import type { BenchHost } from './types.ts';

export { redisCommand };

const run = promisify(execFile);

export interface BenchServers {
  group: RedisGroup;
  /** Ports of the servers, in order; 1-host runs use the first. */
  ports: number[];
  urls: string[];
  version: string;
  /** The 3-master cluster, when a run needs it (`addCluster`). */
  cluster?: { entry: BenchHost; ports: number[] };
  stop(): Promise<void>;
}

/** Every server a run may touch: the standalone ones and the cluster's nodes. */
const allPorts = (servers: BenchServers): number[] => [
  ...servers.ports,
  ...(servers.cluster?.ports ?? []),
];

async function pin(pids: (number | undefined)[], core: number | undefined): Promise<void> {
  if (core === undefined) return;
  for (const pid of pids) {
    if (pid !== undefined) await run('taskset', ['-a', '-p', '-c', String(core), String(pid)]);
  }
}

/**
 * Starts `count` servers (no persistence, loopback, free ports). With `pinCore` every thread of
 * every server is moved onto that core, so Redis and the clients stop trading one core.
 */
export async function startServers(count: number, pinCore?: number): Promise<BenchServers> {
  const group = await startRedis({ count });
  await pin(
    group.servers.map((s) => s.pid),
    pinCore,
  );
  const ports = group.servers.map((s) => s.port);
  const info = String(await redisCommand(ports[0]!, ['INFO', 'server']));
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
  return { group, ports, urls: group.urls, version, stop: () => group.stop() };
}

/**
 * Adds a Redis Cluster of 3 masters and no replicas (test/harness/cluster.ts: slots split
 * evenly, in node order), next to the 3 standalone servers it is compared with: no replication
 * on either side. Pinned like them. `servers.stop()` stops it too.
 */
export async function addCluster(servers: BenchServers, pinCore?: number): Promise<void> {
  const cluster: Cluster = await startCluster({ masters: 3, replicasPerMaster: 0 });
  try {
    await pin(
      cluster.nodes.map((n) => n.server.pid),
      pinCore,
    );
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  const stopStandalone = servers.stop;
  servers.cluster = {
    entry: { cluster: cluster.startupNodes() },
    ports: cluster.nodes.map((n) => n.port),
  };
  servers.stop = async () => {
    await Promise.all([stopStandalone(), cluster.stop()]);
  };
}

/** Empties every server between runs so no run starts on another's keys or subscriptions. */
export async function flushAll(servers: BenchServers): Promise<void> {
  await Promise.all(allPorts(servers).map((p) => redisCommand(p, ['FLUSHALL'])));
}

/** What the servers did during one run: command calls and CPU, summed over every server. */
export interface RedisWork {
  /** Calls per command, commands run inside Lua scripts included (Redis counts them too). */
  calls: Record<string, number>;
  /** Redis CPU (user + system, all threads), ms. */
  cpuMs: number;
}

/** The bench's own commands, left out of a run's figures. */
const ADMIN = new Set(['config|resetstat', 'flushall', 'info', 'script|load']);

async function cpuMs(port: number): Promise<number> {
  const info = String(await redisCommand(port, ['INFO', 'cpu']));
  const read = (k: string): number => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (read('used_cpu_user') + read('used_cpu_sys')) * 1000;
}

/**
 * Zeroes the command counters of the servers a run uses (the standalone ones, or with
 * `cluster` the cluster's nodes) and returns a function that reads what happened since.
 */
export async function startWork(
  servers: BenchServers,
  cluster = false,
): Promise<() => Promise<RedisWork>> {
  const ports = cluster ? (servers.cluster?.ports ?? []) : servers.ports;
  await Promise.all(ports.map((p) => redisCommand(p, ['CONFIG', 'RESETSTAT'])));
  const cpu0 = await Promise.all(ports.map(cpuMs));
  return async () => {
    const calls: Record<string, number> = {};
    let cpu = 0;
    for (const [i, port] of ports.entries()) {
      cpu += (await cpuMs(port)) - cpu0[i]!;
      const stats = String(await redisCommand(port, ['INFO', 'commandstats']));
      for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (!ADMIN.has(m[1]!)) calls[m[1]!] = (calls[m[1]!] ?? 0) + Number(m[2]);
      }
    }
    return { calls, cpuMs: cpu };
  };
}
