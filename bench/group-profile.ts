/**
 * Quick look at the `core-group-slots` row (not part of the bench table): 3 hosts or a 3-master
 * cluster, the bench's worker run in a child, pinned as `npm run bench -- --pin` pins (every
 * server on core 1, the worker on core 0). Prints the round times, the client's CPU per
 * delivered member, and what the servers did: CPU, and time per command (Redis's own count).
 *   node --import tsx bench/group-profile.ts [hosts|cluster] [measured rounds] [warm-up rounds]
 * WORKER_FLAGS adds node flags to the worker, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { startCluster } from '../test/harness/cluster.ts';
import { redisCommand, startRedis } from '../test/harness/redis.ts';
import { RESULT_MARK, type ScenarioParams } from './types.ts';

const [where = 'hosts', iterations = '200', warmupIterations = '20'] = process.argv.slice(2);
const servers =
  where === 'cluster'
    ? await startCluster({ masters: 3, replicasPerMaster: 0 })
    : await startRedis({ count: 3 });
const [pids, ports] =
  'urls' in servers
    ? [servers.servers.map((s) => s.pid), servers.servers.map((s) => s.port)]
    : [servers.nodes.map((n) => n.server.pid), servers.nodes.map((n) => n.port)];
for (const pid of pids) execFileSync('taskset', ['-a', '-p', '-c', '1', String(pid)]);

/** A numeric field of INFO `section`, summed over every server. */
async function infoSum(section: string, field: string): Promise<number> {
  let sum = 0;
  for (const port of ports) {
    const text = String(await redisCommand(port, ['INFO', section]));
    sum += Number(new RegExp(`${field}:([\\d.]+)`).exec(text)?.[1] ?? 0);
  }
  return sum;
}

const redisCpuMs = async (): Promise<number> =>
  1000 * ((await infoSum('cpu', 'used_cpu_user')) + (await infoSum('cpu', 'used_cpu_sys')));

const params: ScenarioParams = {
  scenario: 'core-group-slots',
  hosts: 'urls' in servers ? servers.urls : [{ cluster: servers.startupNodes() }],
  duration: 1,
  warmup: 0,
  iterations: Number(iterations),
  warmupIterations: Number(warmupIterations),
  inflight: 64,
  groupSize: 1000,
  bigGroupSize: 100_000,
  memoryChannels: 0,
  stallSeconds: 10,
};
try {
  await Promise.all(ports.map((p) => redisCommand(p, ['CONFIG', 'RESETSTAT'])));
  const cpu0 = await redisCpuMs();
  const worker = new URL('./worker.ts', import.meta.url).pathname;
  const flags = process.env.WORKER_FLAGS?.split(' ').filter(Boolean) ?? [];
  const argv = [...flags, '--expose-gc', '--import', 'tsx', worker, JSON.stringify(params)];
  const run = spawnSync('taskset', ['-c', '0', process.execPath, ...argv], { encoding: 'utf8' });
  const line = run.stdout.split('\n').find((l) => l.startsWith(RESULT_MARK));
  if (!line) throw new Error(run.stderr);
  const { metrics, info } = JSON.parse(line.slice(RESULT_MARK.length));
  console.log(
    `${where}: p50 ${metrics.p50.toFixed(2)} ms, p99 ${metrics.p99.toFixed(2)} ms, ` +
      `client ${((info.cpuMs * 1000) / info.messages).toFixed(1)} µs CPU per member ` +
      `(setup included), Redis CPU ${((await redisCpuMs()) - cpu0).toFixed(0)} ms`,
  );
  const usec = new Map<string, { calls: number; usec: number }>();
  for (const port of ports) {
    const stats = String(await redisCommand(port, ['INFO', 'commandstats']));
    for (const [, cmd, calls, us] of stats.matchAll(/cmdstat_(\S+?):calls=(\d+),usec=(\d+)/g)) {
      const u = usec.get(cmd!) ?? { calls: 0, usec: 0 };
      usec.set(cmd!, { calls: u.calls + Number(calls), usec: u.usec + Number(us) });
    }
  }
  const top = [...usec].sort((a, b) => b[1].usec - a[1].usec).slice(0, 6);
  console.log(
    `Redis command time: ` +
      top.map(([c, u]) => `${c} ${u.calls} × ${(u.usec / u.calls).toFixed(1)} µs`).join(', '),
  );
} finally {
  await servers.stop();
}
