/**
 * RedisPubSubChannelLayer ⇄ Debian's channels_redis 4.0.0 `RedisPubSubChannelLayer`
 * (test/interop/peer.py), on one and on two hosts: the same names, the same shard for every
 * Redis channel, byte-identical payloads, and messages and group messages both ways.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { RedisPubSubChannelLayer } from '../lib/index.ts';
import { startRedis, type RedisGroup } from './harness/redis.ts';
import { PythonPeer, type PyLayer } from './interop/peer.ts';
import { tag } from './interop/tagged.ts';

let redis: RedisGroup;
let peer: PythonPeer;

before(async () => {
  [redis, peer] = await Promise.all([startRedis({ count: 2 }), PythonPeer.start()]);
});
after(async () => {
  await peer?.stop();
  await redis?.stop();
});

const MESSAGE = {
  type: 'chat.message',
  text: 'héllo wörld ✓',
  n: 42,
  big: 2 ** 40,
  neg: -7,
  ratio: 0.25,
  flags: [true, false, null],
  nested: { list: [1, 'two', { three: 3 }] },
};

for (const hostCount of [1, 2]) {
  describe(`Pub/Sub interop with channels_redis 4.0.0, ${hostCount} host(s)`, () => {
    const prefix = `ps${hostCount}.`;
    let node: RedisPubSubChannelLayer;
    let py: PyLayer;
    let hosts: string[];

    before(async () => {
      hosts = redis.urls.slice(0, hostCount);
      node = new RedisPubSubChannelLayer({ hosts, prefix });
      py = await peer.pubsub({ hosts, prefix });
    });
    after(async () => {
      await node?.close();
      await py?.close();
    });

    test('same channel names and the same shard for every Redis channel', async () => {
      const pyName = await py.newChannel();
      const nodeName = await node.newChannel();
      const shape = new RegExp(`^${prefix.replace('.', '\\.')}specific\\.[0-9a-f]{32}$`);
      assert.match(pyName, shape);
      assert.match(nodeName, shape);
      const names = [pyName, nodeName, 'chat.lobby', node.groupChannel('room')];
      for (let i = 0; i < 40; i++) names.push(node.groupChannel(`g${i}`), `plain.${i}`);
      const used = new Set<number>();
      for (const name of names) {
        const shard = node.shardOf(name);
        used.add(shard);
        assert.equal(shard, await peer.hash(name, hostCount), name);
      }
      assert.equal(used.size, hostCount);
      assert.equal(node.groupChannel('room'), `${prefix}__group__room`);
    });

    test('payload bytes: what Python publishes is what Node publishes', async () => {
      const name = `${prefix}wire`;
      const raw = new Redis(hosts[node.shardOf(name)]!);
      const seen: Buffer[] = [];
      const two = new Promise<void>((resolve) => {
        raw.on('messageBuffer', (_: Buffer, payload: Buffer) => {
          seen.push(payload);
          if (seen.length === 2) resolve();
        });
      });
      try {
        await raw.subscribe(name);
        await py.send(name, MESSAGE);
        await node.send(name, MESSAGE);
        await two;
        assert.deepEqual(seen[1], seen[0]);
        assert.deepEqual(seen[0], await py.serialize(tag(MESSAGE)));
      } finally {
        raw.disconnect();
      }
    });

    test('Node → Python: send to a Python channel, and to a name Python listens on', async () => {
      const pyCh = await py.newChannel();
      await node.send(pyCh, MESSAGE);
      assert.deepEqual(await py.receive(pyCh), MESSAGE);
      await py.listen('chat.to-python');
      await node.send('chat.to-python', { type: 'plain' });
      assert.deepEqual(await py.receive('chat.to-python'), { type: 'plain' });
    });

    test('Python → Node: send to a Node channel, and to a name Node receives on', async () => {
      const nodeCh = await node.newChannel();
      const got = node.receive(nodeCh);
      await py.send(nodeCh, MESSAGE);
      assert.deepEqual(await got, MESSAGE);
      // A receive on a name Node did not create subscribes it (as channels_redis does); once
      // subscribed (a first receive aborted after the subscription), Python's sends arrive.
      const first = new AbortController();
      const probe = node.receive('chat.to-node', { signal: first.signal });
      await waitSubscribed(node, 'chat.to-node', hosts);
      first.abort();
      await assert.rejects(probe, { name: 'AbortError' });
      await py.send('chat.to-node', { type: 'plain', n: 1 });
      assert.deepEqual(await node.receive('chat.to-node'), { type: 'plain', n: 1 });
    });

    test('groups both ways: every member in both processes gets each group message', async () => {
      const [n1, n2] = [await node.newChannel(), await node.newChannel()];
      const p1 = await py.newChannel();
      await node.groupAdd('lobby', n1);
      await node.groupAdd('lobby', n2);
      await py.groupAdd('lobby', p1);

      await py.groupSend('lobby', { type: 'from.python', n: 1 });
      assert.deepEqual(await node.receive(n1), { type: 'from.python', n: 1 });
      assert.deepEqual(await node.receive(n2), { type: 'from.python', n: 1 });
      assert.deepEqual(await py.receive(p1), { type: 'from.python', n: 1 });

      await node.groupSend('lobby', { type: 'from.node', n: 2 });
      assert.deepEqual(await py.receive(p1), { type: 'from.node', n: 2 });
      assert.deepEqual(await node.receive(n1), { type: 'from.node', n: 2 });
      assert.deepEqual(await node.receive(n2), { type: 'from.node', n: 2 });

      // Node leaving entirely stops its deliveries; Python's membership is unaffected.
      await node.groupDiscard('lobby', n1);
      await node.groupDiscard('lobby', n2);
      await py.groupSend('lobby', { type: 'after.discard' });
      assert.deepEqual(await py.receive(p1), { type: 'after.discard' });
      await node.send(n1, { type: 'direct' });
      assert.deepEqual(await node.receive(n1), { type: 'direct' });
      await py.groupDiscard('lobby', p1);
    });
  });
}

/** Until the name's shard lists a subscriber for it (the lazy SUBSCRIBE of a first receive). */
async function waitSubscribed(
  layer: RedisPubSubChannelLayer,
  name: string,
  hosts: string[],
): Promise<void> {
  const client = new Redis(hosts[layer.shardOf(name)]!);
  try {
    for (let i = 0; i < 2000; i++) {
      const [, count] = (await client.call('PUBSUB', 'NUMSUB', name)) as [string, number];
      if (Number(count) > 0) return;
    }
    throw new Error(`${name} never subscribed`);
  } finally {
    client.disconnect();
  }
}
