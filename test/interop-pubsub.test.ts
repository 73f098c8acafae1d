/**
 * chanlayer's RedisPubSubChannelLayer and channels_redis 4.0.0's RedisPubSubChannelLayer on the
 * same redis-servers (1 and 2 hosts): channel and group names, and payloads, each direction a
 * separate test. One Python peer for the whole file.
 *
 * With 2 hosts every direction is run once per shard: channels and groups are chosen so that
 * channels_redis's placement (crc32 of the Redis channel name) puts one on each server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisPubSubChannelLayer } from '../lib/index.ts';
import { redisCommand } from './harness/redis.ts';
import { type PyLayer, redisAndPeer, soon } from './interop/peer.ts';
import { waitFor } from './harness/wait.ts';

const env = redisAndPeer(2);

const HEX32 = '[0-9a-f]{32}';
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Wait until the server of `port` lists at least `count` subscribers of `channel`. */
async function subscribed(port: number, channel: string, count = 1): Promise<void> {
  await waitFor(
    async () => {
      const reply = (await redisCommand(port, ['PUBSUB', 'NUMSUB', channel])) as [string, number];
      return Number(reply[1]) >= count;
    },
    { what: `${count} subscriber(s) of ${channel} on :${port}` },
  );
}

for (const count of [1, 2]) {
  describe(`Pub/Sub interop on ${count} host(s)`, () => {
    const prefix = `ps${count}.`;
    let hosts: string[];
    let node: RedisPubSubChannelLayer;
    let py: PyLayer;
    /** Shard index of a Redis channel name, as channels_redis computes it. */
    const shardOf = (name: string): Promise<number> => env.peer.hash(name, count);
    const portOf = async (name: string): Promise<number> =>
      env.redis.servers[await shardOf(name)]!.port;

    /** One channel per shard, made by `make` (retries until every shard has one). */
    async function perShard(make: () => Promise<string>): Promise<string[]> {
      const found: (string | undefined)[] = new Array(count).fill(undefined);
      for (let i = 0; found.includes(undefined); i++) {
        assert.ok(i < 64, 'could not place a channel on every shard');
        const ch = await make();
        const idx = await shardOf(ch);
        found[idx] ??= ch;
      }
      return found as string[];
    }

    /** One group name per shard (the group's Redis channel is `prefix + '__group__' + group`). */
    async function groupsPerShard(tag: string): Promise<string[]> {
      const found: (string | undefined)[] = new Array(count).fill(undefined);
      for (let i = 0; found.includes(undefined); i++) {
        const group = `${tag}${i}`;
        found[await shardOf(`${prefix}__group__${group}`)] ??= group;
      }
      return found as string[];
    }

    before(async () => {
      hosts = env.redis.urls.slice(0, count);
      node = new RedisPubSubChannelLayer({ hosts, prefix });
      py = await env.peer.pubsub({ hosts, prefix });
    });
    after(async () => {
      await node?.close();
      await py?.close();
    });

    it('names: both sides make `prefix + "specific." + uuid hex`, and honour a custom prefix', async () => {
      const re = new RegExp(`^${escape(prefix)}specific\\.${HEX32}$`);
      assert.match(await node.newChannel(), re);
      assert.match(await py.newChannel(), re);
      const custom = new RegExp(`^${escape(prefix)}custom-${HEX32}$`);
      assert.match(await node.newChannel('custom-'), custom);
      assert.match(await py.newChannel('custom-'), custom);
    });

    it('Python send → Node newChannel() channel (on every shard)', async () => {
      const channels = await perShard(() => node.newChannel());
      for (const [shard, ch] of channels.entries()) {
        const got = node.receive(ch, soon());
        await py.send(ch, { type: 'py.to.node', shard, text: 'héllo ☃' });
        assert.deepEqual(await got, { type: 'py.to.node', shard, text: 'héllo ☃' });
      }
    });

    it('Node send → Python new_channel() channel (on every shard)', async () => {
      const channels = await perShard(() => py.newChannel());
      for (const [shard, ch] of channels.entries()) {
        await node.send(ch, { type: 'node.to.py', shard, text: 'héllo ☃' });
        assert.deepEqual(await py.receive(ch), { type: 'node.to.py', shard, text: 'héllo ☃' });
      }
    });

    it('Python send → Node receive() on a plain name Node subscribes on first use', async () => {
      const ch = `${prefix}plain.to-node`;
      const got = node.receive(ch, soon());
      await subscribed(await portOf(ch), ch);
      await py.send(ch, { type: 'plain', n: 1 });
      assert.deepEqual(await got, { type: 'plain', n: 1 });
    });

    it('Node send → Python receive() on a plain name', async () => {
      const ch = `${prefix}plain.to-python`;
      await py.listen(ch);
      await node.send(ch, { type: 'plain', n: 2 });
      assert.deepEqual(await py.receive(ch), { type: 'plain', n: 2 });
    });

    it('FIFO: 50 messages Python → Node arrive in order', async () => {
      const ch = await node.newChannel();
      for (let i = 0; i < 50; i++) await py.send(ch, { type: 'seq', i });
      for (let i = 0; i < 50; i++)
        assert.deepEqual(await node.receive(ch, soon()), { type: 'seq', i });
    });

    it('FIFO: 50 messages Node → Python arrive in order', async () => {
      const ch = await py.newChannel();
      for (let i = 0; i < 50; i++) await node.send(ch, { type: 'seq', i });
      for (let i = 0; i < 50; i++) assert.deepEqual(await py.receive(ch), { type: 'seq', i });
    });

    it('Python group_send reaches Node members (group with members in both processes, every shard)', async () => {
      for (const group of await groupsPerShard('pyg')) {
        const nodeCh = await node.newChannel();
        const pyCh = await py.newChannel();
        await node.groupAdd(group, nodeCh);
        await py.groupAdd(group, pyCh);
        const nodeGot = node.receive(nodeCh, soon());
        await py.groupSend(group, { type: 'group.py', group });
        assert.deepEqual(await nodeGot, { type: 'group.py', group }, `Node member of ${group}`);
        assert.deepEqual(await py.receive(pyCh), { type: 'group.py', group }, 'Python member');
      }
    });

    it('Node groupSend reaches Python members (group with members in both processes, every shard)', async () => {
      for (const group of await groupsPerShard('nodeg')) {
        const nodeCh = await node.newChannel();
        const pyCh = await py.newChannel();
        await py.groupAdd(group, pyCh);
        await node.groupAdd(group, nodeCh);
        await node.groupSend(group, { type: 'group.node', group });
        assert.deepEqual(await py.receive(pyCh), { type: 'group.node', group }, 'Python member');
        assert.deepEqual(
          await node.receive(nodeCh, soon()),
          { type: 'group.node', group },
          'Node member',
        );
      }
    });

    it('group channel name is `prefix + "__group__" + group` on both sides', async () => {
      const [group] = await groupsPerShard('named');
      const redisName = `${prefix}__group__${group}`;
      const port = await portOf(redisName);
      const nodeCh = await node.newChannel();
      await node.groupAdd(group!, nodeCh);
      await subscribed(port, redisName, 1);
      // Node's subscription is the one Redis lists under that name, and a Python group_send
      // published to it reaches Node; Python's own subscription is listed under the same name.
      const got = node.receive(nodeCh, soon());
      await py.groupSend(group!, { type: 'raw' });
      assert.deepEqual(await got, { type: 'raw' });
      const pyCh = await py.newChannel();
      await py.groupAdd(group!, pyCh);
      await subscribed(port, redisName, 2);
    });

    it('Python group_discard: the Node member still gets the next group message', async () => {
      const [group] = await groupsPerShard('disc');
      const nodeCh = await node.newChannel();
      const pyCh = await py.newChannel();
      await node.groupAdd(group!, nodeCh);
      await py.groupAdd(group!, pyCh);
      await py.groupDiscard(group!, pyCh);
      await py.groupSend(group!, { type: 'after.discard' });
      assert.deepEqual(await node.receive(nodeCh, soon()), { type: 'after.discard' });
    });
  });
}
