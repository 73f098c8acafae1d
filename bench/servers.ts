/** The fresh redis-servers a bench run uses, from the shared test harness. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { redisCommand, startRedis, type RedisGroup } from '../test/harness/redis.ts';

export { redisCommand };

const run = promisify(execFile);

export interface BenchServers {
  group: RedisGroup;
  /** Ports of the servers, in order; 1-host runs use the first. */
  ports: number[];
  urls: string[];
  version: string;
  stop(): Promise<void>;
}

/**
 * Starts `count` servers (no persistence, loopback, free ports). With `pinCore` every thread of
 * every server is moved onto that core, so Redis and the clients stop trading one core.
 */
export async function startServers(count: number, pinCore?: number): Promise<BenchServers> {
  const group = await startRedis({ count });
  if (pinCore !== undefined) {
    for (const s of group.servers) {
      await run('taskset', ['-a', '-p', '-c', String(pinCore), String(s.pid)]);
    }
  }
  const ports = group.servers.map((s) => s.port);
  const info = String(await redisCommand(ports[0]!, ['INFO', 'server']));
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
  return { group, ports, urls: group.urls, version, stop: () => group.stop() };
}

/** Empties every server between runs so no run starts on another's keys or subscriptions. */
export async function flushAll(servers: BenchServers): Promise<void> {
  await Promise.all(servers.ports.map((p) => redisCommand(p, ['FLUSHALL'])));
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

/** Zeroes the command counters and returns a function that reads what happened since. */
export async function startWork(servers: BenchServers): Promise<() => Promise<RedisWork>> {
  await Promise.all(servers.ports.map((p) => redisCommand(p, ['CONFIG', 'RESETSTAT'])));
  const cpu0 = await Promise.all(servers.ports.map(cpuMs));
  return async () => {
    const calls: Record<string, number> = {};
    let cpu = 0;
    for (const [i, port] of servers.ports.entries()) {
      cpu += (await cpuMs(port)) - cpu0[i]!;
      const stats = String(await redisCommand(port, ['INFO', 'commandstats']));
      for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        if (!ADMIN.has(m[1]!)) calls[m[1]!] = (calls[m[1]!] ?? 0) + Number(m[2]);
      }
    }
    return { calls, cpuMs: cpu };
  };
}
