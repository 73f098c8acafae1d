/** Tests of the Redis Cluster harness itself (test/harness/cluster.ts), against a real cluster. */
import fs from 'node:fs';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startCluster, slotOf, type Cluster, type ClusterNode } from './harness/cluster.ts';
import { redisCommand } from './harness/redis.ts';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('slotOf (cluster-key-slot, what ioredis and the layer place keys by) agrees with CLUSTER KEYSLOT on every key shape chanlayer makes', async () => {
  const cluster = await startCluster({ masters: 1, replicasPerMaster: 0 });
  try {
    const keySlot = (key: string) =>
      redisCommand(cluster.nodes[0]!.port, ['CLUSTER', 'KEYSLOT', key]);
    const keys = [
      '',
      'foo',
      'asgi:specific.abc!def',
      'asgi:group:chat',
      'asgi:specific.abc!$inflight',
      'asgi:processes',
      // A reader's wake key, hash-tagged to the queue it reads (cluster-shards.ts).
      'asgi:wake:0123abcd:{asgispecific.abc!}',
      '{user1000}.following',
      'foo{{bar}}zap',
      'foo{bar}{zap}',
      '{}',
      'a{b',
      'a}b{c}',
      'héllo wörld ✓',
    ];
    for (const key of keys) {
      assert.equal(slotOf(key), await keySlot(key), `slot of ${JSON.stringify(key)}`);
    }
    // Where the library is wrong: an empty tag `{}` makes Redis hash the whole key, and the
    // library looks on for a later tag. chanlayer never makes such a key (channel names hold no
    // braces; a prefix with braces is refused on a cluster). Should the library be fixed, this
    // fails, and the note goes.
    assert.notEqual(slotOf('foo{}{bar}'), await keySlot('foo{}{bar}'));
  } finally {
    await cluster.stop();
  }
});

describe('startCluster: 3 masters × 1 replica', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await startCluster({ masters: 3, replicasPerMaster: 1 });
  });
  after(() => cluster?.stop());

  /** GET on exactly `node` (no redirect followed): a MOVED error rejects. */
  const getAt = (node: ClusterNode, key: string) => redisCommand(node.port, ['GET', key]);

  test('every slot is served, each master has one live replica, all nodes agree', async () => {
    const view = await cluster.view();
    assert.equal(view.length, 6);
    const masters = await cluster.masters();
    assert.equal(masters.length, 3);
    let slots = 0;
    for (const m of masters) {
      slots += view
        .find((v) => v.id === m.id)!
        .slots.reduce((sum, [lo, hi]) => sum + hi - lo + 1, 0);
      const replicas = await cluster.replicasOf(m);
      assert.equal(replicas.length, 1, `replicas of :${m.port}`);
      const role = (await redisCommand(replicas[0]!.port, ['ROLE'])) as unknown[];
      assert.deepEqual(role.slice(0, 3), ['slave', '127.0.0.1', m.port]);
    }
    assert.equal(slots, 16384);
    for (const n of cluster.nodes) {
      const info = String(await redisCommand(n.port, ['CLUSTER', 'INFO']));
      assert.match(info, /cluster_state:ok/);
      assert.match(info, /cluster_known_nodes:6\r/);
    }
    assert.equal(new Set(cluster.nodes.map((n) => n.id)).size, 6);
  });

  test('migrateSlot moves a slot with its keys; the new owner serves them, the old says MOVED', async () => {
    const keys = ['{moving}a', '{moving}b', '{moving}c'];
    const slot = slotOf(keys[0]!);
    const from = await cluster.ownerOf(slot);
    for (const k of keys) await redisCommand(from.port, ['SET', k, `v-${k}`]);
    const to = (await cluster.masters()).find((m) => m !== from)!;

    const result = await cluster.migrateSlot(slot, to, { batchSize: 2 });
    assert.equal(result.from, from);
    assert.equal(result.keys, 3);
    assert.equal(await cluster.ownerOf(slot), to);
    for (const k of keys) assert.equal(await getAt(to, k), `v-${k}`);
    await assert.rejects(getAt(from, keys[0]!), {
      message: `MOVED ${slot} 127.0.0.1:${to.port}`,
    });
    await cluster.settled();
  });

  test('addMaster joins an empty master; slots migrated to it are served there', async () => {
    const added = await cluster.addMaster();
    assert.equal(cluster.nodes.length, 7);
    const seen = (await cluster.view()).find((v) => v.id === added.id);
    assert.deepEqual(seen && { role: seen.role, slots: seen.slots }, { role: 'master', slots: [] });

    const keys = ['grow:1', 'grow:2'];
    for (const k of keys) {
      await redisCommand((await cluster.ownerOf(slotOf(k))).port, ['SET', k, k]);
    }
    for (const k of keys) await cluster.migrateSlot(slotOf(k), added);
    assert.ok((await cluster.masters()).includes(added));
    for (const k of keys) {
      assert.equal(await cluster.ownerOf(slotOf(k)), added);
      assert.equal(await getAt(added, k), k);
    }
    await cluster.settled();
  });

  test('kill a master: its replica is promoted (timed); restart brings it back as replica', async () => {
    const key = 'failover:key';
    const victim = await cluster.ownerOf(slotOf(key));
    const [replica] = await cluster.replicasOf(victim);
    assert.ok(replica, 'the victim has a replica');
    await redisCommand(victim.port, ['SET', key, 'kept']);
    // Acknowledged by the replica before the kill, so the promoted node must have it.
    assert.equal(await redisCommand(victim.port, ['WAIT', '1', '2000']), 1);

    await cluster.kill(victim);
    assert.equal(victim.server.pid, undefined);
    const promotion = await cluster.promotedWithin(victim);
    assert.equal(promotion.node, replica);
    // cluster-node-timeout 1000: failure detection alone takes ≥ 1 s; an election follows.
    assert.ok(promotion.ms >= 1000 && promotion.ms < 10_000, `promoted in ${promotion.ms} ms`);
    await cluster.settled();
    // Asked again long after the promotion (the killed node has no slots by now): same answer.
    assert.equal((await cluster.promotedWithin(victim)).node, replica);
    assert.equal(await cluster.ownerOf(slotOf(key)), replica);
    assert.equal(await getAt(replica, key), 'kept');
    assert.equal((await cluster.view()).find((v) => v.id === victim.id)?.failed, true);

    await cluster.restart(victim);
    const back = (await cluster.view()).find((v) => v.id === victim.id);
    assert.deepEqual(back && { role: back.role, masterId: back.masterId, failed: back.failed }, {
      role: 'replica',
      masterId: replica.id,
      failed: false,
    });
    assert.equal(await getAt(replica, key), 'kept');
  });

  test('stop() leaves no process and no directory', async () => {
    const pids = cluster.nodes.map((n) => n.server.pid!);
    const dirs = cluster.nodes.map((n) => n.server.dir);
    assert.ok(pids.every((pid) => pid !== undefined && isAlive(pid)));
    await cluster.stop();
    for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} still alive`);
    for (const dir of dirs) assert.equal(fs.existsSync(dir), false, `${dir} still exists`);
  });
});
