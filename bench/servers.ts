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
