/**
 * RedisChannelLayer on a real Redis Cluster (test/harness/cluster.ts: 3 masters × 1 replica on
 * loopback, `cluster-node-timeout` 1 s). The API suite also runs on a cluster
 * (test/redis-core.test.ts); this file holds what only a cluster has: slots, a reader per slot,
 * and faults under traffic — a master SIGKILLed, slots migrated live, a node back as a replica, a
 * new master taking slots — each with counts, like test/failover.test.ts.
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { after, before, describe, test, type TestContext } from 'node:test';
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import { RedisChannelLayer, type LayerOptions } from '../lib/index.ts';
import {
  clusterFailover,
  measureFailover,
  TrafficProbe,
  type FailoverMeasurement,
  CLUSTER_FAULTS,
} from './failover-probe.ts';
import { startCluster, type Cluster as TestCluster, type ClusterNode } from './harness/cluster.ts';
import { waitFor } from './harness/wait.ts';

const { COMMAND_TIMEOUT_MS, RESUME_AFTER_PROMOTION_MS, SLACK_MS } = CLUSTER_FAULTS;

let cluster: TestCluster;
const layers: RedisChannelLayer[] = [];
const raws: Cluster[] = [];
let prefixes = 0;

before(async () => {
  cluster = await startCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 });
});
after(async () => {
  await Promise.all(layers.map((l) => l.close()));
  for (const r of raws) r.disconnect();
  await cluster?.stop();
});

function layerOn(options: LayerOptions = {}): RedisChannelLayer {
  const layer = new RedisChannelLayer({
    hosts: [{ cluster: cluster.startupNodes() }],
    prefix: `c${prefixes++}:`,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    ...options,
  });
  layers.push(layer);
  return layer;
}

/** A plain cluster client for looking at Redis directly. */
function raw(): Cluster {
  const client = new Cluster(
    cluster.startupNodes().map(([host, port]) => ({ host, port })),
    { redisOptions: { maxRetriesPerRequest: 1 } },
  );
  client.on('error', () => {});
  raws.push(client);
  return client;
}

/** A name (built from `base`) whose key `prefix + name` has its slot on `node`. */
async function nameOn(node: ClusterNode, prefix: string, base: string): Promise<string> {
  for (let i = 0; ; i++) {
    const name = `${base}${i}`;
    if ((await cluster.ownerOf(calculateSlot(prefix + name))).id === node.id) return name;
  }
}

/** A new channel of `layer` whose process queue has its slot on `node`. */
async function localOn(
  layer: RedisChannelLayer,
  node: ClusterNode,
  prefix: string,
): Promise<string> {
  for (let i = 0; ; i++) {
    const channel = await layer.newChannel(`on${i}`);
    const key = prefix + channel.slice(0, channel.indexOf('!') + 1);
    if ((await cluster.ownerOf(calculateSlot(key))).id === node.id) return channel;
  }
}

/** A channel name (built from `base`) whose key under `prefix` is in the slot of `key`. */
function sameSlotName(prefix: string, key: string, base: string): string {
  const slot = calculateSlot(key);
  for (let i = 0; ; i++) if (calculateSlot(`${prefix}${base}${i}`) === slot) return `${base}${i}`;
}

/** The queue key of `channel` (its non-local name under `prefix`). */
const queueKey = (prefix: string, channel: string): string =>
  prefix + (channel.includes('!') ? channel.slice(0, channel.indexOf('!') + 1) : channel);

describe('RedisChannelLayer on a Redis Cluster: slots', () => {
  test('operations: health reports every master; a dead process leaves the group (registry on its slot)', async () => {
    const prefix = 'cl-ops:';
    const liveness = { heartbeatMs: 200, deadAfterMs: 1000 };
    const judge = layerOn({ prefix, liveness });
    const report = await judge.health();
    assert.equal(report.ok, true, JSON.stringify(report));
    assert.equal(report.shards.length, 3);
    for (const shard of report.shards) assert.equal(shard.role, 'master');

    const gone = layerOn({ prefix, liveness });
    const channel = await gone.newChannel();
    await gone.groupAdd('ops', channel);
    await judge.groupAdd('ops', 'normal.member');
    const registry = raw();
    await waitFor(
      async () => (await registry.zscore(`${prefix}:processes`, gone.clientPrefix)) !== null,
    );
    // Silent from now on, as a killed process would be: no more heartbeats, and (unlike a clean
    // close(), which leaves the registry) its last heartbeat stays; its membership stays too.
    const lastBeat = await registry.zscore(`${prefix}:processes`, gone.clientPrefix);
    await gone.close();
    await registry.zadd(`${prefix}:processes`, lastBeat!, gone.clientPrefix);
    await waitFor(async () => (await judge.groupSize('ops')) === 1, {
      timeoutMs: 10_000,
      what: 'the silent process to be judged dead',
    });
    await judge.groupSend('ops', { type: 'after' });
    assert.deepEqual(await registry.zrange(`${prefix}:group:ops`, 0, -1), ['normal.member']);
    assert.equal(judge.stats().deadRemoved, 1);
  });

  test("keys are channels_redis's names, no hash tags; a tick's sends to 300 slots all land", async () => {
    const layer = layerOn();
    const prefix = `c${prefixes - 1}:`;
    const specific = await layer.newChannel();
    await layer.send('plain', { type: 'm' });
    await layer.send(specific, { type: 'm' });
    await layer.groupAdd('room', specific);
    const r = raw();
    const nonLocal = specific.slice(0, specific.indexOf('!') + 1);
    for (const key of [`${prefix}plain`, prefix + nonLocal, `${prefix}:group:room`]) {
      assert.equal(await r.type(key), 'zset', key);
    }
    // One tick, 300 channels over many slots: each slot's sends are one script call.
    const channels = Array.from({ length: 300 }, (_, i) => `many-${i}`);
    assert.ok(new Set(channels.map((c) => calculateSlot(prefix + c))).size > 250);
    await Promise.all(channels.map((c, seq) => layer.send(c, { type: 'm', seq })));
    for (const [seq, c] of channels.entries()) {
      assert.deepEqual(await layer.receive(c), { type: 'm', seq });
    }
    assert.equal(layer.stats().sent, 302);
  });

  test('a group send to members on 16 slots is one write per master, not one per slot (cluster-writes.ts)', async () => {
    const layer = layerOn({ liveness: false });
    const prefix = `c${prefixes - 1}:`;
    const slots = new Map<number, string[]>();
    for (let i = 0; slots.size < 16 || [...slots.values()].some((m) => m.length < 8); i++) {
      const name = `member-${i}`;
      const slot = calculateSlot(prefix + name);
      const members = slots.get(slot);
      if (members) members.push(name);
      else if (slots.size < 16) slots.set(slot, [name]);
    }
    const members = [...slots.values()].flat();
    for (const m of members) await layer.groupAdd('wide', m);
    // Every master's connection up before counting (one still connecting queues each command).
    for (const node of await cluster.masters()) {
      await layer.send(await nameOn(node, prefix, 'warm'), { type: 'warm' });
    }

    // Every socket write (a corked batch is one) to a cluster port during the group send.
    const ports = new Set(cluster.nodes.map((n) => n.port));
    const writes = new Map<number, number>();
    const proto = Socket.prototype as unknown as Record<
      '_write' | '_writev',
      (...args: unknown[]) => void
    >;
    const originals = { _write: proto._write, _writev: proto._writev };
    for (const method of ['_write', '_writev'] as const) {
      proto[method] = function (this: Socket, ...args: unknown[]) {
        if (ports.has(this.remotePort!)) {
          writes.set(this.remotePort!, (writes.get(this.remotePort!) ?? 0) + 1);
        }
        return originals[method].apply(this, args);
      };
    }
    try {
      await layer.groupSend('wide', { type: 'fan' });
    } finally {
      Object.assign(proto, originals);
    }
    const masters = (await cluster.masters()).length;
    const total = [...writes.values()].reduce((a, b) => a + b, 0);
    // The members read (one node), then each master's script calls in one write.
    assert.ok(total <= masters + 1, `${total} writes for 16 slots: ${JSON.stringify([...writes])}`);
    for (const m of members) assert.deepEqual(await layer.receive(m), { type: 'fan' });
  });

  test('receivers on 60 slots at once (past the 32 blocking connections) are each served within ms', async () => {
    const sender = layerOn();
    const receiver = layerOn({ prefix: `c${prefixes - 1}:` });
    const channels = Array.from({ length: 60 }, (_, i) => `wide-${i}`);
    const latencies: number[] = [];
    // Every receiver waits first; then each message is sent alone and timed to its receive.
    const pending = channels.map((c) => receiver.receive(c));
    for (const [i, c] of channels.entries()) {
      const start = performance.now();
      await sender.send(c, { type: 'm', seq: i });
      assert.deepEqual(await pending[i], { type: 'm', seq: i });
      latencies.push(performance.now() - start);
    }
    latencies.sort((a, b) => a - b);
    const p50 = latencies[latencies.length >> 1]!;
    const max = latencies.at(-1)!;
    // Blocking slots answer in ~1 ms; polled ones within their 50 ms poll.
    assert.ok(max < 500, `slowest receive ${max.toFixed(1)} ms`);
    assert.ok(p50 < 100, `median receive ${p50.toFixed(1)} ms`);
  });

  test('a carried-over channels_redis `$inflight` backup is put back (two steps: different slots)', async () => {
    const layer = layerOn();
    const prefix = `c${prefixes - 1}:`;
    const r = raw();
    const member = Buffer.concat([
      Buffer.alloc(12, 7),
      Buffer.from([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa1, 0x78]),
    ]);
    await r.zadd(`${prefix}carried$inflight`, Date.now() / 1000, member);
    assert.notEqual(calculateSlot(`${prefix}carried$inflight`), calculateSlot(`${prefix}carried`));
    assert.deepEqual(await layer.receive('carried'), { type: 'x' });
    assert.equal(await r.exists(`${prefix}carried$inflight`), 0);
  });
});

/** What every cluster fault run must show per probe (cf. test/failover.test.ts assertHealthy). */
function assertHealthy(m: FailoverMeasurement, maxResumeMs: number): void {
  for (const { probe, resumedAt, summary: s } of m.probes) {
    const what = `probe on ${probe.channel}`;
    assert.ok(
      resumedAt - m.promotedAt <= maxResumeMs,
      `${what}: resumed ${resumedAt - m.promotedAt} ms after promotion`,
    );
    assert.deepEqual(s.duplicates, [], `${what}: duplicates`);
    assert.equal(s.outOfOrder, 0, `${what}: out of order`);
    assert.equal(s.receiveErrors, 0, `${what}: receive errors ${probe.receiveErrors.join('; ')}`);
    assert.ok(
      s.maxSendMs <= COMMAND_TIMEOUT_MS + SLACK_MS,
      `${what}: a send took ${s.maxSendMs} ms (bound ${COMMAND_TIMEOUT_MS} ms)`,
    );
    for (const message of Object.keys(s.errors)) {
      assert.match(message, /Redis Cluster/, `${what}: unclear error "${message}"`);
    }
    // A loss is a write the old master acknowledged before dying that never reached its replica.
    for (const seq of s.lost) {
      assert.ok(
        probe.sends[seq]!.settledAt <= m.deadAt,
        `${what}: message ${seq} acked after the kill, lost`,
      );
    }
    assert.ok(s.received > 0 && s.acked > 0);
  }
}

function describeRun(m: FailoverMeasurement, label: string): string {
  const lines = [
    `${label}: :${m.oldPort} → :${m.newPort}, promotion ${m.promotedAt - m.killedAt} ms`,
  ];
  for (const { probe, resumedAt, summary: s } of m.probes) {
    lines.push(
      `  ${probe.channel}${probe.groupName ? ` (group ${probe.groupName})` : ''}: resumed ${
        resumedAt - m.promotedAt
      } ms after promotion; sent ${s.sent}, acked ${s.acked}, received ${s.received}, acked-lost ${
        s.lost.length
      }, duplicates ${s.duplicates.length}, rejected ${s.rejected} (${
        s.rejectedDelivered.length
      } delivered anyway), max send ${s.maxSendMs} ms; errors ${JSON.stringify(s.errors)}`,
    );
  }
  return lines.join('\n');
}

describe('RedisChannelLayer on a Redis Cluster: faults under traffic', () => {
  test('SIGKILL the master of busy keys: resumes ≤ promotion + 500 ms, 0 duplicates, other masters keep flowing; it comes back as a replica under traffic', async (t: TestContext) => {
    const layer = layerOn();
    const other = layerOn({ prefix: `c${prefixes - 1}:` });
    const prefix = `c${prefixes - 2}:`;
    const [victim, healthy] = await cluster.masters();
    // A normal channel, this process's own queue and a group, all on the victim; a channel on a
    // healthy master, which must keep flowing while the victim is replaced.
    const normal = await nameOn(victim!, prefix, 'busy-normal-');
    const local = await localOn(other, victim!, prefix);
    const groupMember = await other.newChannel('member');
    const group = await nameOn(victim!, `${prefix}:group:`, 'room');
    await layer.groupAdd(group, groupMember);
    const bystander = await nameOn(healthy!, prefix, 'elsewhere-');
    const probes = [
      new TrafficProbe(layer, normal, { tag: 'normal' }),
      new TrafficProbe(other, local, { tag: 'local' }),
      new TrafficProbe(other, groupMember, { tag: 'group', group }),
    ];
    const flowing = new TrafficProbe(layer, bystander, { tag: 'bystander' });
    flowing.start();
    const failover = clusterFailover(cluster, victim!);
    try {
      const m = await measureFailover({ probes, topology: failover });
      t.diagnostic(describeRun(m, 'cluster failover'));
      assertHealthy(m, RESUME_AFTER_PROMOTION_MS);
      // The healthy master's key flowed during the outage (kill → promotion).
      const during = flowing.receives.filter((r) => r.at > m.deadAt && r.at < m.promotedAt);
      t.diagnostic(`bystander: ${during.length} received between the kill and the promotion`);
      assert.ok(
        during.length > 0,
        'no message on a healthy master between the kill and the promotion',
      );
      const stats = layer.stats();
      assert.ok(stats.disconnects >= 1 && stats.reconnects >= 1, JSON.stringify(stats));
      assert.ok(stats.failovers >= 1, JSON.stringify(stats));

      // The killed master comes back (as a replica of the promoted one) under traffic on the
      // same keys: nothing is lost, duplicated or refused.
      const again = [
        new TrafficProbe(layer, normal, { tag: 'normal-again' }),
        new TrafficProbe(other, local, { tag: 'local-again' }),
      ];
      for (const p of again) p.start();
      await Promise.all(again.map((p) => p.receivedAtLeast(50, 30_000)));
      await failover.restartKilled();
      assert.ok(
        (await cluster.masters()).every((m) => m.id !== victim!.id),
        'back as a replica',
      );
      await Promise.all(again.map((p) => p.receivedAtLeast(p.receives.length + 50, 30_000)));
      for (const s of await Promise.all(again.map((p) => p.finish(30_000)))) {
        assert.deepEqual([s.lost, s.duplicates, s.rejected], [[], [], 0], JSON.stringify(s.errors));
      }
    } finally {
      await Promise.all([...probes, flowing].map((p) => p.stop()));
      await failover.restartKilled();
    }
  });

  test('live resharding of a busy queue, a busy process queue and a busy group: 0 lost, 0 duplicated, no error', async (t: TestContext) => {
    // A reader that did not see the move itself is redirected by Redis from its cron, within
    // about a second (cluster-shards.ts BLOCK_SECONDS): capacity for a second of traffic (200/s).
    const capacity = 1000;
    const layer = layerOn({ capacity });
    const other = layerOn({ prefix: `c${prefixes - 1}:`, capacity });
    const prefix = `c${prefixes - 2}:`;
    const local = await other.newChannel('mig');
    const member = await other.newChannel('migmember');
    await layer.groupAdd('migrating', member);
    // Each probe's sender is the other layer (its own cluster client): the receiving side learns
    // of a move only from Redis, as a separate process would.
    const probes = [
      new TrafficProbe(layer, 'migrating-normal', { tag: 'normal', sender: other }),
      new TrafficProbe(other, local, { tag: 'local', sender: layer }),
      new TrafficProbe(other, member, { tag: 'group', group: 'migrating', sender: layer }),
    ];
    const errors: Error[] = [];
    layer.on('error', (e) => errors.push(e));
    other.on('error', (e) => errors.push(e));
    // A backlog sitting in the busy queue's slot while it moves: MIGRATE carries it along.
    const backlog = sameSlotName(prefix, queueKey(prefix, 'migrating-normal'), 'backlog-');
    for (let seq = 0; seq < 500; seq++) await other.send(backlog, { type: 'b', seq });
    for (const p of probes) p.start();
    try {
      await Promise.all(probes.map((p) => p.receivedAtLeast(100, 30_000)));
      const keys = [
        queueKey(prefix, 'migrating-normal'),
        queueKey(prefix, local),
        `${prefix}:group:migrating`,
        queueKey(prefix, member),
      ];
      const moves: string[] = [];
      for (const slot of new Set(keys.map((k) => calculateSlot(k)))) {
        const owner = await cluster.ownerOf(slot);
        const masters = await cluster.masters();
        const to = masters.find((m) => m.id !== owner.id)!;
        const { keys: moved } = await cluster.migrateSlot(slot, to, { batchSize: 1 });
        moves.push(`slot ${slot} :${owner.port} → :${to.port} (${moved} keys)`);
        // Traffic goes on after each move.
        await Promise.all(probes.map((p) => p.receivedAtLeast(p.receives.length + 20, 30_000)));
      }
      t.diagnostic(moves.join('; '));
      for (const p of probes) {
        const gaps = p.receives.slice(1).map((r, k) => r.at - p.receives[k]!.at);
        const longest = Math.max(...gaps);
        t.diagnostic(`${p.channel}: longest pause between receives ${longest} ms`);
        assert.ok(longest < 2000, `${p.channel}: a pause of ${longest} ms`);
      }
      for (let seq = 0; seq < 500; seq++) {
        assert.deepEqual(await layer.receive(backlog), { type: 'b', seq });
      }
      const summaries = await Promise.all(probes.map((p) => p.finish(30_000)));
      for (const [i, s] of summaries.entries()) {
        t.diagnostic(`${probes[i]!.channel}: ${JSON.stringify({ ...s, lost: s.lost.length })}`);
        assert.deepEqual(s.lost, [], 'lost');
        assert.deepEqual(s.duplicates, [], 'duplicated');
        assert.equal(s.rejected, 0, `sends rejected: ${JSON.stringify(s.errors)}`);
        assert.equal(s.receiveErrors, 0);
        assert.equal(s.outOfOrder, 0);
      }
      assert.deepEqual(errors.map(String), []);
    } finally {
      await Promise.all(probes.map((p) => p.stop()));
    }
  });

  test('grow the cluster: a new master joins and takes slots of busy keys, under traffic', async (t: TestContext) => {
    const layer = layerOn();
    const probes = [
      new TrafficProbe(layer, 'growing-normal', { tag: 'normal' }),
      new TrafficProbe(layer, await layer.newChannel('grow'), { tag: 'local' }),
    ];
    for (const p of probes) p.start();
    try {
      await Promise.all(probes.map((p) => p.receivedAtLeast(50, 30_000)));
      const t0 = Date.now();
      const added = await cluster.addMaster();
      const marks: string[] = [`added ${Date.now() - t0}`];
      const prefix = `c${prefixes - 1}:`;
      const slots = new Set(probes.map((p) => calculateSlot(queueKey(prefix, p.channel))));
      for (const slot of slots) {
        marks.push(`migrate ${slot} start ${Date.now() - t0}`);
        await cluster.migrateSlot(slot, added);
        marks.push(`migrate ${slot} done ${Date.now() - t0}`);
        console.error(`[test ${Date.now() % 100000}] migrated ${slot}`);
      }
      for (const p of probes) {
        let gap = 0;
        let at = 0;
        for (let i = 1; i < p.receives.length; i++) {
          const g = p.receives[i]!.at - p.receives[i - 1]!.at;
          if (g > gap) [gap, at] = [g, p.receives[i]!.at - t0];
        }
        marks.push(`${p.channel}: longest gap ${gap} ms ending at ${at}`);
      }
      t.diagnostic(marks.join('; '));
      await Promise.all(probes.map((p) => p.receivedAtLeast(p.receives.length + 50, 30_000)));
      for (const slot of slots) assert.equal((await cluster.ownerOf(slot)).id, added.id);
      const summaries = await Promise.all(probes.map((p) => p.finish(30_000)));
      for (const s of summaries) {
        t.diagnostic(JSON.stringify({ ...s, lost: s.lost.length }));
        assert.deepEqual(s.lost, []);
        assert.deepEqual(s.duplicates, []);
        assert.equal(s.rejected, 0, JSON.stringify(s.errors));
      }
    } finally {
      await Promise.all(probes.map((p) => p.stop()));
    }
  });
});
