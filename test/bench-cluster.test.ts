/**
 * The bench's Redis Cluster topology (bench/servers.ts addCluster: 3 masters, no replicas, next
 * to 3 standalone servers) and the runs it adds: planned right after their 3-host run, placed
 * where the scenarios think (the `*-slots` groupSend spreads its members' queues over every
 * master), every message carried, and a layer that refuses a cluster entry named with its reason.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ON_CLUSTER, planRuns } from '../bench/plan.ts';
import { placementOf } from '../bench/scenarios/group.ts';
import { loadChanlayer, refuses, runScenario, type Chanlayer } from '../bench/scenarios/index.ts';
import { addCluster, startServers, type BenchServers } from '../bench/servers.ts';
import type { BenchHost, ScenarioId, ScenarioParams } from '../bench/types.ts';
import { redisCommand } from './harness/redis.ts';

let servers: BenchServers;
let chanlayer: Chanlayer;
let entry: BenchHost;
before(async () => {
  servers = await startServers(3);
  await addCluster(servers);
  entry = servers.cluster!.entry;
  const loaded = await loadChanlayer();
  if (typeof loaded === 'string') throw new Error(loaded);
  chanlayer = loaded;
});
after(() => servers?.stop());

const params = (scenario: ScenarioId, hosts: BenchHost[]): ScenarioParams => ({
  scenario,
  hosts,
  duration: 0.3,
  warmup: 0.1,
  iterations: 3,
  warmupIterations: 1,
  inflight: 8,
  groupSize: 200,
  bigGroupSize: 2000,
  memoryChannels: 1,
  stallSeconds: 5,
});

/**
 * Message queues left on every server (keys other than groups and the liveness registry): none
 * once every message sent was received. Empties the servers for the next test.
 */
async function queuesLeft(): Promise<string[]> {
  const ports = [...servers.ports, ...servers.cluster!.ports];
  const keys = (await Promise.all(ports.map((p) => redisCommand(p, ['KEYS', '*'])))).flat();
  await Promise.all(ports.map((p) => redisCommand(p, ['FLUSHALL'])));
  return (keys as string[]).filter((k) => !k.startsWith('asgi:group:') && k !== 'asgi:processes');
}

test('a cluster run follows each ON_CLUSTER 3-host run, for the layers that take a cluster only', () => {
  const runs = planRuns({
    chanlayer: ['core', 'pubsub'],
    python: true,
    bare: true,
    ceilings: true,
    cluster: ['core'],
  });
  const keys = runs.map((r) => r.key);
  const onCluster = runs.filter((r) => r.hosts === 'cluster');
  assert.ok(onCluster.length > 0);
  for (const r of onCluster) {
    assert.ok(ON_CLUSTER.includes(r.id as ScenarioId), r.key);
    assert.ok(!r.id.startsWith('pubsub-'), `${r.key}: pubsub was not offered the cluster`);
    assert.equal(keys[keys.indexOf(r.key) - 1], `chanlayer/${r.id}/3h`, r.key);
  }
  for (const id of ON_CLUSTER.filter((i) => !i.startsWith('pubsub-'))) {
    assert.ok(keys.includes(`chanlayer/${id}/cluster`), id);
  }
  // No cluster offered: the plan of before.
  assert.ok(
    planRuns({ chanlayer: ['core'], python: false, bare: false, ceilings: false }).every(
      (r) => r.hosts !== 'cluster',
    ),
  );
});

test("the cluster placement is where Redis puts a process's queue: its slot's master", async () => {
  const placement = placementOf([entry]);
  const nodes = servers.cluster!.ports;
  assert.equal(placement.shards, 3);
  const seen = new Set<number>();
  // One layer per queue: a process's local channels all share one key.
  for (let i = 0; i < 9; i++) {
    const layer = chanlayer.make('core', [entry]);
    try {
      const channel = await layer.newChannel();
      const key = `asgi${channel.slice(0, channel.indexOf('!') + 1)}`;
      const slot = Number(await redisCommand(nodes[0]!, ['CLUSTER', 'KEYSLOT', key]));
      assert.equal(placement.slotOf(channel), slot);
      await layer.send(channel, { type: 'placed' });
      const shard = placement.shardOf(channel);
      seen.add(shard);
      assert.equal(Number(await redisCommand(nodes[shard]!, ['EXISTS', key])), 1, key);
      assert.deepEqual(await layer.receive(channel), { type: 'placed' });
    } finally {
      await layer.close();
    }
  }
  assert.ok(seen.size > 1, 'one shard only: the check above proves little');
});

for (const [label, hosts] of [
  ['3 hosts', () => servers.urls],
  ['the cluster', () => [entry]],
] as const) {
  test(`core-group-slots on ${label}: 16 receivers, every member gets every round`, async () => {
    const r = await runScenario(chanlayer.make, params('core-group-slots', hosts()));
    assert.equal(r.info?.receivers, 16);
    assert.equal(r.info?.members, 200);
    assert.equal((r.info?.rounds as number[]).length, 3);
    assert.ok(r.metrics.p50! > 0 && r.metrics.p50! <= r.metrics.p99!);
    assert.ok(Math.abs(r.metrics.membersPerSec! - (200 / r.metrics.p50!) * 1000) < 1e-6);
    assert.deepEqual(await queuesLeft(), []);
  });
}

test('core-inflight and core-pingpong on the cluster: every message received, nothing left', async () => {
  const stream = await runScenario(chanlayer.make, params('core-inflight', [entry]));
  assert.equal(stream.info?.lost, 0);
  assert.ok(Number(stream.info?.received) > 0);
  const ping = await runScenario(chanlayer.make, params('core-pingpong', [entry]));
  assert.ok(Number(ping.info?.samples) > 10, `samples: ${String(ping.info?.samples)}`);
  assert.deepEqual(await queuesLeft(), []);
});

test('Pub/Sub on the cluster: refused with a reason naming the cluster, or it carries a ping-pong', async () => {
  const why = await refuses(chanlayer, 'pubsub', [entry]);
  if (why !== undefined) {
    assert.match(why, /cluster/i);
    return;
  }
  const r = await runScenario(chanlayer.make, params('pubsub-pingpong', [entry]));
  assert.ok(Number(r.info?.samples) > 10, `samples: ${String(r.info?.samples)}`);
});

test('a layer that takes its hosts is not refused', async () => {
  assert.equal(await refuses(chanlayer, 'core', [entry]), undefined);
  assert.equal(await refuses(chanlayer, 'pubsub', servers.urls), undefined);
});
