/**
 * RedisPubSubChannelLayer on a real Redis Cluster (test/harness/cluster.ts: 3 masters × 1
 * replica, `cluster-node-timeout` 1 s): channels_redis's names on sharded (default) and global
 * Pub/Sub, subscriptions grouped by slot and live when the promises resolve, and faults under
 * traffic with counts — a master SIGKILLed, the slots of a busy channel and a busy group moved
 * live, and to a master added to the cluster — with sender and receiver on separate layers (two
 * processes' worth of clients).
 * Pub/Sub keeps nothing: delivery is at most once, so a loss is accepted only while the
 * subscription was not back, and must be explained by that.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import calculateSlot from 'cluster-key-slot';
import { RedisPubSubChannelLayer, type LayerOptions } from '../lib/index.ts';
import {
  clusterFailover,
  measureFailover,
  TrafficProbe,
  type ProbeSummary,
  CLUSTER_FAULTS,
} from './failover-probe.ts';
import { startCluster, type Cluster as TestCluster, type ClusterNode } from './harness/cluster.ts';
import { redisCommand } from './harness/redis.ts';
import { waitFor } from './harness/wait.ts';

const { COMMAND_TIMEOUT_MS, RESUME_AFTER_PROMOTION_MS, SLACK_MS } = CLUSTER_FAULTS;

let cluster: TestCluster;
const layers: RedisPubSubChannelLayer[] = [];

before(async () => {
  cluster = await startCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 });
});
after(async () => {
  await Promise.all(layers.map((l) => l.close()));
  await cluster?.stop();
});

interface Watched {
  layer: RedisPubSubChannelLayer;
  events: Array<{ event: string; at: number }>;
  warnings: string[];
  errors: Error[];
}

function layerOn(options: Omit<LayerOptions, 'randomPrefixLength'> = {}): Watched {
  const warnings: string[] = [];
  const layer = new RedisPubSubChannelLayer({
    hosts: [{ cluster: cluster.startupNodes() }],
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    logger: { warn: (m) => warnings.push(m) },
    ...options,
  });
  layers.push(layer);
  const events: Watched['events'] = [];
  for (const event of ['disconnect', 'reconnect', 'failover'] as const) {
    layer.on(event, () => events.push({ event, at: Date.now() }));
  }
  const errors: Error[] = [];
  layer.on('error', (err) => errors.push(err));
  return { layer, events, warnings, errors };
}

/**
 * A receiving and a sending layer (two processes' worth of clients), and a probe on each of a
 * channel of the receiving one and a member of `group` there.
 */
async function busyPair(group: string, options: Omit<LayerOptions, 'randomPrefixLength'> = {}) {
  const receiving = layerOn(options);
  const sending = layerOn(options);
  const direct = await receiving.layer.newChannel();
  const member = await receiving.layer.newChannel();
  await receiving.layer.groupAdd(group, member);
  const probes = [
    new TrafficProbe(receiving.layer, direct, { tag: 'direct', sender: sending.layer }),
    new TrafficProbe(receiving.layer, member, { tag: 'group', group, sender: sending.layer }),
  ];
  return { receiving, sending, direct, probes };
}

/** Subscribers of a sharded channel on the node that owns its slot. */
async function shardNumsub(name: string): Promise<number> {
  const owner = await cluster.ownerOf(calculateSlot(name));
  const reply = (await redisCommand(owner.port, ['PUBSUB', 'SHARDNUMSUB', name])) as unknown[];
  return Number(reply[1]);
}

/**
 * Subscribers of a global channel, summed over every live node (ioredis may subscribe on a
 * replica; a killed node, not restarted yet, has none).
 */
async function globalNumsub(name: string): Promise<number> {
  let n = 0;
  for (const node of cluster.nodes) {
    const reply = await redisCommand(node.port, ['PUBSUB', 'NUMSUB', name]).catch(
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') return [name, 0];
        throw err;
      },
    );
    n += Number((reply as unknown[])[1]);
  }
  return n;
}

/** A new channel of `layer` whose slot `node` owns. */
async function channelOn(layer: RedisPubSubChannelLayer, node: ClusterNode): Promise<string> {
  for (;;) {
    const channel = await layer.newChannel();
    if ((await cluster.ownerOf(calculateSlot(channel))).id === node.id) return channel;
    await layer.deleteChannel(channel);
  }
}

/** A group whose Redis channel's slot `node` owns. */
async function groupOn(layer: RedisPubSubChannelLayer, node: ClusterNode, base: string) {
  for (let i = 0; ; i++) {
    const group = `${base}${i}`;
    if ((await cluster.ownerOf(calculateSlot(layer.groupChannel(group)))).id === node.id)
      return group;
  }
}

/**
 * At most once, explained: every message acked after `backAt` (the subscription was back) was
 * received; nothing twice; the rest is counted.
 */
function assertAtMostOnce(probe: TrafficProbe, s: ProbeSummary, backAt: number): void {
  assert.deepEqual(s.duplicates, [], `${probe.channel}: duplicates`);
  assert.equal(s.outOfOrder, 0, `${probe.channel}: out of order`);
  assert.equal(s.receiveErrors, 0, `${probe.channel}: receive errors`);
  for (const seq of s.lost) {
    assert.ok(
      probe.sends[seq]!.startedAt <= backAt,
      `${probe.channel}: message ${seq} sent ${probe.sends[seq]!.startedAt - backAt} ms after ` +
        'the subscription was back, yet lost',
    );
  }
}

const summaryLine = (p: TrafficProbe, s: ProbeSummary): string =>
  `${p.channel}${p.groupName ? ` (group ${p.groupName})` : ''}: sent ${s.sent}, acked ${s.acked}, received ${s.received}, lost ${s.lost.length}, duplicates ${s.duplicates.length}, rejected ${s.rejected} (${s.rejectedDelivered.length} delivered anyway), max send ${s.maxSendMs} ms; errors ${JSON.stringify(s.errors)}`;

for (const mode of ['sharded', 'global'] as const) {
  describe(`RedisPubSubChannelLayer on a Redis Cluster (${mode} Pub/Sub): the API`, () => {
    const numsub = mode === 'sharded' ? shardNumsub : globalNumsub;

    test("channels_redis's names, live when newChannel/groupAdd resolve, 100 channels over many slots", async () => {
      const { layer: receiver } = layerOn({ clusterPubSub: mode });
      const { layer: sender } = layerOn({ clusterPubSub: mode });
      const channels = await Promise.all(Array.from({ length: 100 }, () => receiver.newChannel()));
      assert.ok(new Set(channels.map((c) => calculateSlot(c))).size > 90);
      // Live as soon as each promise resolved: a raw count on Redis sees every one.
      for (const c of channels.slice(0, 10)) assert.equal(await numsub(c), 1, c);
      await receiver.groupAdd('room', channels[0]!);
      await receiver.groupAdd('room', channels[1]!);
      assert.equal(receiver.groupChannel('room'), 'asgi__group__room');
      assert.equal(await numsub('asgi__group__room'), 1);
      await Promise.all(channels.map((c, seq) => sender.send(c, { type: 'm', seq })));
      for (const [seq, c] of channels.entries()) {
        assert.deepEqual(await receiver.receive(c), { type: 'm', seq });
      }
      await sender.groupSend('room', { type: 'g' });
      assert.deepEqual(await receiver.receive(channels[0]!), { type: 'g' });
      assert.deepEqual(await receiver.receive(channels[1]!), { type: 'g' });
      // A channel received on without newChannel is subscribed on first use.
      const plain = receiver.receive('plain.channel');
      await waitFor(async () => (await numsub('plain.channel')) === 1, { what: 'subscribed' });
      await sender.send('plain.channel', { type: 'p' });
      assert.deepEqual(await plain, { type: 'p' });
      // Leaving and deleting unsubscribe (confirmed when the promise resolves).
      await receiver.groupDiscard('room', channels[0]!);
      await receiver.deleteChannel(channels[1]!);
      assert.equal(await numsub('asgi__group__room'), 0);
      assert.equal(await numsub(channels[1]!), 0);
      assert.equal(receiver.shardOf(channels[2]!), 0);
      const health = await receiver.health();
      assert.equal(health.ok, true);
      assert.equal(health.shards.length, 3, 'each master');
      assert.equal(receiver.stats().sent, 0);
      assert.equal(sender.stats().sent, 101);
    });
  });
}

describe('RedisPubSubChannelLayer on a Redis Cluster: faults under traffic', () => {
  for (const mode of ['sharded', 'global'] as const) {
    test(`${mode} Pub/Sub: SIGKILL the master of a busy channel and group: resumes ≤ promotion + 500 ms, 0 duplicates, losses only before resubscription, trouble reported once`, async (t: TestContext) => {
      const numsub = mode === 'sharded' ? shardNumsub : globalNumsub;
      const receiving = layerOn({ clusterPubSub: mode });
      const sending = layerOn({ clusterPubSub: mode });
      const [victim] = await cluster.masters();
      const direct = await channelOn(receiving.layer, victim!);
      const member = await receiving.layer.newChannel();
      const group = await groupOn(receiving.layer, victim!, 'room');
      await receiving.layer.groupAdd(group, member);
      const probes = [
        new TrafficProbe(receiving.layer, direct, { tag: 'direct', sender: sending.layer }),
        new TrafficProbe(receiving.layer, member, { tag: 'group', group, sender: sending.layer }),
      ];
      const failover = clusterFailover(cluster, victim!);
      // Joining a group on the dead master's slots while it is down: live when it resolves, or a
      // ConnectionError — within commandTimeoutMs either way.
      const late = await groupOn(receiving.layer, victim!, 'late');
      let joining: Promise<{ ms: number; outcome: string }> | undefined;
      const topology = {
        ...failover,
        async killMaster() {
          const killed = await failover.killMaster();
          const start = Date.now();
          joining = receiving.layer.groupAdd(late, member).then(
            () => ({ ms: Date.now() - start, outcome: 'resolved' }),
            (err: Error) => ({ ms: Date.now() - start, outcome: `${err.name}: ${err.message}` }),
          );
          return killed;
        },
      };
      try {
        const m = await measureFailover({ probes, topology });
        t.diagnostic(`promotion ${m.promotedAt - m.killedAt} ms after the kill`);
        const joined = await joining!;
        t.diagnostic(`groupAdd during the outage: ${joined.outcome} after ${joined.ms} ms`);
        assert.ok(joined.ms <= COMMAND_TIMEOUT_MS + SLACK_MS, `groupAdd took ${joined.ms} ms`);
        assert.match(joined.outcome, /^resolved$|^ConnectionError: Redis Cluster/);
        for (const { probe, resumedAt, summary: s } of m.probes) {
          t.diagnostic(
            `${summaryLine(probe, s)}; resumed ${resumedAt - m.promotedAt} ms after promotion`,
          );
          assert.ok(
            resumedAt - m.promotedAt <= RESUME_AFTER_PROMOTION_MS,
            `${probe.channel}: resumed ${resumedAt - m.promotedAt} ms after promotion`,
          );
          assertAtMostOnce(probe, s, resumedAt);
          assert.ok(s.maxSendMs <= COMMAND_TIMEOUT_MS + SLACK_MS, `a send took ${s.maxSendMs} ms`);
          for (const message of Object.keys(s.errors)) {
            assert.match(message, /Redis Cluster/, `unclear error "${message}"`);
          }
        }
        // Both sides saw it: the receiving one through its masters' connections.
        for (const side of [receiving, sending]) {
          const stats = side.layer.stats();
          assert.ok(stats.disconnects >= 1 && stats.reconnects >= 1, JSON.stringify(stats));
          assert.ok(stats.failovers >= 1, JSON.stringify(stats));
          // ioredis's subscribers retry every few ms through the outage: reported once.
          t.diagnostic(`warnings: ${JSON.stringify(side.warnings)}`);
          assert.ok(side.warnings.length <= 2, side.warnings.join('\n'));
          assert.deepEqual(side.errors, []);
        }
        assert.equal(await numsub(direct), 1);
        assert.equal(await numsub(receiving.layer.groupChannel(group)), 1);
      } finally {
        await Promise.all(probes.map((p) => p.stop()));
        await failover.restartKilled();
      }
    });
  }

  for (const mode of ['sharded', 'global'] as const) {
    test(`${mode} Pub/Sub: live resharding of the slots of a busy channel and a busy group: resubscribed, nothing lost after, no error`, async (t: TestContext) => {
      const numsub = mode === 'sharded' ? shardNumsub : globalNumsub;
      const { receiving, sending, direct, probes } = await busyPair('moving', {
        clusterPubSub: mode,
      });
      for (const p of probes) p.start();
      try {
        await Promise.all(probes.map((p) => p.receivedAtLeast(100, 30_000)));
        const moves: Array<{ probe: TrafficProbe; movedAt: number }> = [];
        const lines: string[] = [];
        for (const [i, name] of [direct, receiving.layer.groupChannel('moving')].entries()) {
          const slot = calculateSlot(name);
          const owner = await cluster.ownerOf(slot);
          const to = (await cluster.masters()).find((n) => n.id !== owner.id)!;
          await cluster.migrateSlot(slot, to);
          const movedAt = Date.now();
          moves.push({ probe: probes[i]!, movedAt });
          lines.push(`slot ${slot} :${owner.port} → :${to.port}`);
          // Traffic flows again after each move (resubscribed on the new owner).
          await Promise.all(probes.map((p) => p.receivedAtLeast(p.receives.length + 50, 30_000)));
        }
        t.diagnostic(lines.join('; '));
        for (const p of probes) {
          const gaps = p.receives.slice(1).map((r, k) => r.at - p.receives[k]!.at);
          t.diagnostic(`${p.channel}: longest pause between receives ${Math.max(...gaps)} ms`);
        }
        for (const { probe, movedAt } of moves) {
          const back = await probe.resumedAfter(movedAt, 10_000);
          t.diagnostic(
            `${probe.channel}: first message sent after the move received +${back.receivedAt - movedAt} ms`,
          );
          assert.ok(
            back.receivedAt - movedAt < 2000,
            `resubscribed ${back.receivedAt - movedAt} ms after`,
          );
        }
        const summaries = await Promise.all(probes.map((p) => p.finish(30_000)));
        for (const [i, s] of summaries.entries()) {
          const probe = probes[i]!;
          t.diagnostic(summaryLine(probe, s));
          const move = moves.find((mv) => mv.probe === probe)!;
          const back = probe.firstRoundTripAfter(move.movedAt)!;
          assertAtMostOnce(probe, s, back.sentAt);
          assert.equal(s.rejected, 0, `sends rejected: ${JSON.stringify(s.errors)}`);
        }
        for (const side of [receiving, sending]) {
          assert.deepEqual(side.errors, []);
          assert.deepEqual(side.warnings, []);
        }
        assert.equal(await numsub(direct), 1);
        assert.equal(await numsub(receiving.layer.groupChannel('moving')), 1);
      } finally {
        await Promise.all(probes.map((p) => p.stop()));
      }
    });
  }

  test('sharded Pub/Sub: a new master takes the slots of a busy channel and a busy group (growing the cluster) under traffic', async (t: TestContext) => {
    const { receiving, sending, direct, probes } = await busyPair('growing');
    for (const p of probes) p.start();
    try {
      await Promise.all(probes.map((p) => p.receivedAtLeast(100, 30_000)));
      const added = await cluster.addMaster();
      const names = [direct, receiving.layer.groupChannel('growing')];
      const movedAt: number[] = [];
      for (const name of names) {
        await cluster.migrateSlot(calculateSlot(name), added);
        movedAt.push(Date.now());
        await Promise.all(probes.map((p) => p.receivedAtLeast(p.receives.length + 50, 30_000)));
      }
      for (const name of names) {
        assert.equal((await cluster.ownerOf(calculateSlot(name))).id, added.id);
        assert.equal(await shardNumsub(name), 1, `${name} subscribed on the new master`);
      }
      const summaries = await Promise.all(probes.map((p) => p.finish(30_000)));
      for (const [i, s] of summaries.entries()) {
        const probe = probes[i]!;
        const gaps = probe.receives.slice(1).map((r, k) => r.at - probe.receives[k]!.at);
        t.diagnostic(`${summaryLine(probe, s)}; longest pause ${Math.max(...gaps)} ms`);
        assertAtMostOnce(probe, s, probe.firstRoundTripAfter(movedAt[i]!)!.sentAt);
        assert.equal(s.rejected, 0, `sends rejected: ${JSON.stringify(s.errors)}`);
      }
      for (const side of [receiving, sending]) {
        assert.deepEqual(side.errors, []);
        assert.deepEqual(side.warnings, []);
      }
    } finally {
      await Promise.all(probes.map((p) => p.stop()));
    }
  });
});
