/**
 * Quick profile of the `core-group-slots` row (not part of the bench table): 3 hosts or a
 * 3-master cluster, the bench's worker run in a child; client CPU per delivered member. With
 * PROFILE_DIR set the worker runs under `--cpu-prof` into that directory.
 *   node --import tsx bench/group-profile.ts [hosts|cluster] [iterations]
 */
import { spawnSync } from 'node:child_process';
import { startCluster } from '../test/harness/cluster.ts';
import { startRedis } from '../test/harness/redis.ts';
import type { ScenarioParams } from './types.ts';

const [where = 'hosts', iterations = '200'] = process.argv.slice(2);
const servers =
  where === 'cluster'
    ? await startCluster({ masters: 3, replicasPerMaster: 0 })
    : await startRedis({ count: 3 });
const hosts = 'urls' in servers ? servers.urls : [{ cluster: servers.startupNodes() }];
const params: ScenarioParams = {
  scenario: 'core-group-slots',
  hosts,
  duration: 1,
  warmup: 1,
  iterations: Number(iterations),
  warmupIterations: 20,
  inflight: 64,
  groupSize: 1000,
  bigGroupSize: 100_000,
  memoryChannels: 0,
  stallSeconds: 10,
};
try {
  const dir = process.env.PROFILE_DIR;
  const flags = dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
  const worker = new URL('./worker.ts', import.meta.url).pathname;
  const run = spawnSync(
    process.execPath,
    [...flags, '--expose-gc', '--import', 'tsx', worker, JSON.stringify(params)],
    { encoding: 'utf8' },
  );
  const line = run.stdout.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
  if (!line) throw new Error(run.stderr);
  const { metrics, info } = JSON.parse(line.slice('BENCH_RESULT '.length));
  const perMember = (info.cpuMs * 1000) / info.messages;
  console.log(
    `${where}: p50 ${metrics.p50.toFixed(2)} ms, p99 ${metrics.p99.toFixed(2)} ms, ` +
      `${perMember.toFixed(1)} µs CPU per member`,
  );
} finally {
  await servers.stop();
}
