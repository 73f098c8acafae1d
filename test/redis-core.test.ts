/**
 * RedisChannelLayer against real redis-servers: every API semantic and error on
 * 1 host, 3 hosts and 10 DBs of one server; #221 both ways; normal-channel latency across
 * shards; a group of 1,000 members over 3 shards; exact capacity under 50 concurrent senders;
 * unreadable payloads; thousands of aborted receives; ring sharding; wire-protocol layout checked by
 * reading Redis directly; reconnects; close() leaving no handle.
 *
 * No sleeps stand in for synchronization: tests await promises and events, or poll observable
 * state against a deadline. Waits that *are* the subject (expiry) are named as such.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { once, setMaxListeners } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { encode as msgpackEncode } from '@msgpack/msgpack';
import { Cluster, Redis } from 'ioredis';
import {
  ChannelFull,
  InvalidChannelName,
  InvalidGroupName,
  LayerClosed,
  MessageTooLarge,
  NotAChannelQueue,
  NotAGroup,
  RedisChannelLayer,
  fromConfig,
  type HostEntry,
  type LayerOptions,
  type Message,
  WrongClientPrefix,
} from '../lib/index.ts';
import { crc32Placement } from '../lib/redis/placement.ts';
import { startCluster, type Cluster as TestCluster } from './harness/cluster.ts';
import { freePort, startRedis, type RedisGroup } from './harness/redis.ts';
import { receiveOrNothing, waitFor } from './harness/wait.ts';

setMaxListeners(0);

type Seq = Message & { sender?: string; seq: number };

// ---------------------------------------------------------------------------------------------
// Helpers

const layers: RedisChannelLayer[] = [];
const raws: Redis[] = [];

function makeLayer(options: LayerOptions): RedisChannelLayer {
  const layer = new RedisChannelLayer(options);
  layers.push(layer);
  return layer;
}

/** A plain ioredis client for looking at (or writing) Redis directly. */
function raw(url: string): Redis {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  raws.push(client);
  return client;
}

afterEach(async () => {
  await Promise.all(layers.splice(0).map((l) => l.close()));
  raws.splice(0).forEach((c) => c.disconnect());
});

/** What a channels_redis sender stores: 12 random bytes + msgpack(message). */
function framed(message: Record<string, unknown>): Buffer {
  return Buffer.concat([randomBytes(12), Buffer.from(msgpackEncode(message))]);
}

/** Resolves with the error a promise rejects with; fails if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a rejection');
}

/** A newChannel of `layer` whose queue is on shard `shard` (varying the prefix). */
async function channelOnShard(
  layer: RedisChannelLayer,
  shard: number,
  tag = 'on',
): Promise<string> {
  for (let i = 0; ; i++) {
    const channel = await layer.newChannel(`${tag}${shard}x${i}`);
    if (layer.shardOf(channel) === shard) return channel;
  }
}

/** Every key under `prefix` on every host (SCAN, like flush). */
async function keysOf(urls: string[], prefix: string): Promise<string[]> {
  const all: string[] = [];
  for (const url of urls) {
    const client = raw(url);
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      all.push(...keys);
    } while (cursor !== '0');
  }
  return all.sort();
}

let one: RedisGroup;
let three: RedisGroup;
let cluster: TestCluster;

before(async () => {
  [one, three, cluster] = await Promise.all([
    startRedis({ count: 1 }),
    startRedis({ count: 3 }),
    startCluster({ masters: 3, replicasPerMaster: 0 }),
  ]);
});
after(async () => {
  await Promise.all([one?.stop(), three?.stop(), cluster?.stop()]);
});

/** A plain ioredis Cluster client for looking at (or writing) a cluster directly. */
function rawCluster(): Cluster {
  const client = new Cluster(
    cluster.startupNodes().map(([host, port]) => ({ host, port })),
    { redisOptions: { maxRetriesPerRequest: 1 } },
  );
  client.on('error', () => {});
  raws.push(client as unknown as Redis);
  return client;
}

interface Topology {
  name: string;
  hosts(): HostEntry[];
  /** A client for looking at shard `index` (a cluster: the whole cluster, routed by key). */
  client(index: number): Redis;
  /** Every key under `prefix` (SCAN on every host, or every master). */
  keys(prefix: string): Promise<string[]>;
  /** Hosts, or undefined for a cluster (no placement by host). */
  urls: (() => string[]) | undefined;
}

function hostsTopology(name: string, urls: () => string[]): Topology {
  return {
    name,
    hosts: urls,
    client: (index) => raw(urls()[index]!),
    keys: (prefix) => keysOf(urls(), prefix),
    urls,
  };
}

const topologies: Topology[] = [
  hostsTopology('1 host', () => one.urls),
  hostsTopology('3 hosts', () => three.urls),
  hostsTopology('10 DBs of one server', () =>
    Array.from({ length: 10 }, (_, i) => `${one.urls[0]}/${i}`),
  ),
  {
    name: 'a Redis Cluster of 3 masters',
    hosts: () => [{ cluster: cluster.startupNodes() }],
    client: () => rawCluster() as unknown as Redis,
    keys: async (prefix) => {
      const masters = await cluster.masters();
      return keysOf(
        masters.map((m) => `redis://${m.host}:${m.port}`),
        prefix,
      );
    },
    urls: undefined,
  },
];

let prefixCounter = 0;
/** A fresh key prefix per test, so tests sharing servers never see each other's keys. */
function freshPrefix(): string {
  return `t${process.pid}x${prefixCounter++}:`;
}

// ---------------------------------------------------------------------------------------------

for (const topology of topologies) {
  describe(`RedisChannelLayer on ${topology.name}`, () => {
    const layerOn = (extra: LayerOptions = {}): RedisChannelLayer =>
      makeLayer({ hosts: topology.hosts(), prefix: freshPrefix(), ...extra });

    it('sends and receives on normal and process-specific channels, FIFO', async () => {
      const prefix = freshPrefix();
      const sender = makeLayer({ hosts: topology.hosts(), prefix, capacity: 1000 });
      const receiver = makeLayer({ hosts: topology.hosts(), prefix });
      const specific = await receiver.newChannel();
      assert.match(specific, new RegExp(`^specific\\.${receiver.clientPrefix}![0-9a-f]{32}$`));
      assert.match(
        await receiver.newChannel('other'),
        new RegExp(`^other\\.${receiver.clientPrefix}![0-9a-f]{32}$`),
      );
      for (const channel of ['plain-channel', specific]) {
        for (let seq = 0; seq < 200; seq++) await sender.send(channel, { type: 'm', seq });
        for (let seq = 0; seq < 200; seq++)
          assert.deepEqual(await receiver.receive(channel), { type: 'm', seq });
      }
      // Concurrent sends from one sender keep their order too (pipelined on one connection).
      await Promise.all(
        Array.from({ length: 300 }, (_, seq) => sender.send(specific, { type: 'm', seq })),
      );
      for (let seq = 0; seq < 300; seq++)
        assert.equal(((await receiver.receive(specific)) as Seq).seq, seq);
      assert.equal(sender.stats().sent, 700);
      assert.equal(receiver.stats().received, 700);
    });

    it('delivers to several waiters on one channel, one message each', async () => {
      const layer = layerOn();
      const channel = await layer.newChannel();
      const waiting = Array.from({ length: 5 }, () => layer.receive(channel));
      for (let seq = 0; seq < 5; seq++) await layer.send(channel, { type: 'm', seq });
      const got = (await Promise.all(waiting)).map((m) => (m as Seq).seq);
      assert.deepEqual(got, [0, 1, 2, 3, 4]);
      const normal = Array.from({ length: 5 }, () => layer.receive('shared-work'));
      for (let seq = 0; seq < 5; seq++) await layer.send('shared-work', { type: 'm', seq });
      assert.deepEqual(
        (await Promise.all(normal)).map((m) => (m as Seq).seq).sort(),
        [0, 1, 2, 3, 4],
      );
    });

    it('groups: add, send to all, discard, re-add', async () => {
      const prefix = freshPrefix();
      const a = makeLayer({ hosts: topology.hosts(), prefix });
      const b = makeLayer({ hosts: topology.hosts(), prefix });
      const chans = [
        await a.newChannel(),
        await a.newChannel(),
        await b.newChannel('x'),
        'group-normal',
      ];
      for (const c of chans) await a.groupAdd('room', c);
      await a.groupAdd('room', chans[0]!); // idempotent
      await a.groupSend('room', { type: 'hello', seq: 1 });
      const owner = (c: string) => (c.includes(b.clientPrefix) ? b : a);
      for (const c of chans) assert.deepEqual(await owner(c).receive(c), { type: 'hello', seq: 1 });
      await a.groupDiscard('room', chans[1]!);
      await a.groupDiscard('room', 'never-a-member');
      await a.groupSend('room', { type: 'hello', seq: 2 });
      for (const c of [chans[0]!, chans[2]!, chans[3]!])
        assert.equal(((await owner(c).receive(c)) as Seq).seq, 2);
      assert.equal(await receiveOrNothing(a, chans[1]!, 200), undefined);
      await a.groupSend('nobody-here', { type: 'void', seq: 0 });
      assert.equal(a.stats().groupSends, 3);
      assert.equal(a.stats().groupDeliveries, 7);
    });

    it('groupSend: each local member gets a message of its own (flat or nested)', async () => {
      const a = makeLayer({ hosts: topology.hosts(), prefix: freshPrefix() });
      const chans = [await a.newChannel(), await a.newChannel(), await a.newChannel()];
      for (const c of chans) await a.groupAdd('copies', c);
      for (const message of [
        { type: 'flat', seq: 1 },
        { type: 'nested', seq: 2, inner: { list: [1, 2] } },
      ]) {
        await a.groupSend('copies', message);
        const got = (await Promise.all(chans.map((c) => a.receive(c)))) as Array<
          Record<string, unknown>
        >;
        for (const m of got) assert.deepEqual(m, message);
        got[0]!.type = 'changed';
        if (got[0]!.inner) (got[0]!.inner as { list: number[] }).list.push(3);
        assert.deepEqual(got[1], message);
        assert.deepEqual(got[2], message);
      }
    });

    it('groupSend skips and drops memberships older than groupExpiry', async () => {
      const prefix = freshPrefix();
      const a = makeLayer({ hosts: topology.hosts(), prefix, groupExpiry: 60 });
      const fresh = await a.newChannel();
      const stale = await a.newChannel();
      await a.groupAdd('aging', fresh);
      // A membership added 61 s ago (by a process gone since): past groupExpiry.
      const key = `${prefix}:group:aging`;
      const redis = topology.client(a.shardOf('aging', { group: true }));
      await redis.zadd(key, Date.now() / 1000 - 61, stale);
      await a.groupSend('aging', { type: 'hi', seq: 1 });
      assert.deepEqual(await a.receive(fresh), { type: 'hi', seq: 1 });
      assert.deepEqual(await redis.zrange(key, 0, -1), [fresh]);
      assert.equal(a.stats().groupDeliveries, 1);
    });

    it('capacity: send rejects ChannelFull at the limit; channelCapacity overrides; groupSend drops silently', async () => {
      const layer = layerOn({ capacity: 3, channelCapacity: { 'big-*': 5, 'specific.*': 2 } });
      for (let seq = 0; seq < 3; seq++) await layer.send('small', { type: 'm', seq });
      const full = await rejection(layer.send('small', { type: 'm', seq: 3 }));
      assert.ok(full instanceof ChannelFull);
      assert.match(full.message, /small/);
      for (let seq = 0; seq < 5; seq++) await layer.send('big-one', { type: 'm', seq });
      assert.ok(
        (await rejection(layer.send('big-one', { type: 'm', seq: 5 }))) instanceof ChannelFull,
      );
      const specific = await layer.newChannel();
      await layer.send(specific, { type: 'm', seq: 0 });
      await layer.send(specific, { type: 'm', seq: 1 });
      assert.ok(
        (await rejection(layer.send(specific, { type: 'm', seq: 2 }))) instanceof ChannelFull,
      );
      await layer.groupAdd('g', 'small');
      await layer.groupAdd('g', 'roomy');
      await layer.groupSend('g', { type: 'g', seq: 9 });
      const stats = layer.stats();
      assert.equal(stats.capacityRejected, 3);
      assert.equal(stats.groupDropped, 1);
      assert.equal(stats.groupDeliveries, 1);
      assert.equal(((await layer.receive('roomy')) as Seq).seq, 9);
      // Receiving makes room again.
      assert.equal(((await layer.receive('small')) as Seq).seq, 0);
      await layer.send('small', { type: 'm', seq: 3 });
    });

    it('flush empties Redis (prefix keys only) and local buffers; the layer stays usable', async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: topology.hosts(), prefix });
      const bystander = topology.client(0);
      await bystander.set(`other-app:${prefix}`, 'keep');
      const specific = await layer.newChannel();
      for (let i = 0; i < 50; i++) await layer.send(`c${i}`, { type: 'm', seq: i });
      await layer.send(specific, { type: 'm', seq: 0 });
      await layer.groupAdd('g', specific);
      assert.ok((await topology.keys(prefix)).length >= 52);
      await layer.flush();
      assert.deepEqual(await topology.keys(prefix), []);
      assert.equal(await bystander.get(`other-app:${prefix}`), 'keep');
      await bystander.del(`other-app:${prefix}`);
      assert.equal(await receiveOrNothing(layer, specific, 200), undefined);
      await layer.send(specific, { type: 'after', seq: 1 });
      assert.deepEqual(await layer.receive(specific), { type: 'after', seq: 1 });
    });

    it('a receiver on a normal channel gets a message placed on any shard within milliseconds', async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: topology.hosts(), prefix });
      // Every host a channels_redis sender's round-robin may use (a cluster: the key's slot).
      const places = topology.urls?.().length ?? 1;
      for (let shard = 0; shard < places; shard++) {
        const client = topology.client(shard);
        const pending = layer.receive('anywhere');
        const start = performance.now();
        // Where a channels_redis sender's round-robin may have put it.
        await client.zadd(
          `${prefix}anywhere`,
          Date.now() / 1000,
          framed({ type: 'rr', seq: shard }),
        );
        assert.deepEqual(await pending, { type: 'rr', seq: shard });
        const ms = performance.now() - start;
        assert.ok(ms < 500, `shard ${shard}: ${ms.toFixed(1)} ms`);
      }
    });

    it(
      '#221: a process-local message placed by the full name (channels_redis) arrives; ours is placed by the non-local name',
      {
        skip: topology.urls === undefined && 'a cluster places keys by its slots',
      },
      async () => {
        const prefix = freshPrefix();
        const hosts = topology.urls!();
        const layer = makeLayer({ hosts, prefix });
        const place = crc32Placement(hosts.length);
        // A channel whose full-name shard differs from its non-local shard, when there are several.
        let channel = await layer.newChannel();
        for (
          let i = 0;
          hosts.length > 1 && place.index(channel) === layer.shardOf(channel) && i < 1000;
          i++
        ) {
          channel = await layer.newChannel();
        }
        const nonLocal = channel.slice(0, channel.indexOf('!') + 1);
        const fullShard = place.index(channel);
        assert.equal(layer.shardOf(channel), place.index(nonLocal));
        if (hosts.length > 1) assert.notEqual(fullShard, place.index(nonLocal));
        // channels_redis 4.x send: key = prefix + non-local name, on crc32(full name).
        await raw(hosts[fullShard]!).zadd(
          prefix + nonLocal,
          Date.now() / 1000,
          framed({ type: 'from-python', seq: 1, __asgi_channel__: channel }),
        );
        assert.deepEqual(await layer.receive(channel), { type: 'from-python', seq: 1 });
        // Ours lands where a channels_redis receiver reads: crc32(non-local name). (Checked on a
        // channel of a layer that is not reading yet, so the queue is still there to look at.)
        const idle = makeLayer({ hosts, prefix });
        let target = await idle.newChannel();
        for (
          let i = 0;
          hosts.length > 1 && place.index(target) === idle.shardOf(target) && i < 1000;
          i++
        ) {
          target = await idle.newChannel();
        }
        const targetNonLocal = target.slice(0, target.indexOf('!') + 1);
        const sender = makeLayer({ hosts, prefix });
        await sender.send(target, { type: 'from-node', seq: 2 });
        for (let shard = 0; shard < hosts.length; shard++) {
          const count = await raw(hosts[shard]!).zcard(prefix + targetNonLocal);
          assert.equal(count, shard === place.index(targetNonLocal) ? 1 : 0, `shard ${shard}`);
        }
        assert.deepEqual(await idle.receive(target), { type: 'from-node', seq: 2 });
        await sender.send(channel, { type: 'from-node', seq: 3 });
        assert.deepEqual(await layer.receive(channel), { type: 'from-node', seq: 3 });
      },
    );

    it('a group of 1,000 members spread over the shards all receive', async () => {
      const prefix = freshPrefix();
      const a = makeLayer({ hosts: topology.hosts(), prefix });
      const b = makeLayer({ hosts: topology.hosts(), prefix });
      const members: Array<[RedisChannelLayer, string]> = [];
      for (let i = 0; i < 1000; i++) {
        const owner = i % 2 ? a : b;
        // Several members share a queue key (same prefix), most have their own.
        members.push([owner, await owner.newChannel(`m${i % 700}`)]);
      }
      await Promise.all(members.map(([, c]) => a.groupAdd('thousand', c)));
      const used = new Set(members.map(([owner, c]) => owner.shardOf(c)));
      // Every host; on a cluster, many slots.
      assert.ok(used.size >= (topology.urls?.().length ?? 100), `${used.size} places`);
      const got = Promise.all(members.map(([owner, c]) => owner.receive(c)));
      await a.groupSend('thousand', { type: 'all', seq: 1 });
      for (const m of await got) assert.deepEqual(m, { type: 'all', seq: 1 });
      assert.equal(a.stats().groupDeliveries, 1000);
    });
  });
}

// ---------------------------------------------------------------------------------------------

describe('RedisChannelLayer: errors', () => {
  it('a key that is not a channel queue fails only its own sends, in a lone send or a batch', async () => {
    const prefix = freshPrefix();
    const layer = makeLayer({ hosts: one.urls, prefix });
    await raw(one.urls[0]!).set(`${prefix}foreign`, 'x');
    await assert.rejects(layer.send('foreign', { type: 'm' }), /not a channel queue/);
    // One tick: one send_many call with the foreign key between two good ones.
    const results = await Promise.allSettled([
      layer.send('a', { type: 'm' }),
      layer.send('foreign', { type: 'm' }),
      layer.send('b', { type: 'm' }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    const reason = (results[1] as PromiseRejectedResult).reason as unknown;
    assert.match(String(reason), /foreign.*not a channel queue/);
    assert.ok(reason instanceof NotAChannelQueue && reason.key === `${prefix}foreign`);
    assert.equal(await raw(one.urls[0]!).zcard(`${prefix}a`), 1);
    assert.equal(await raw(one.urls[0]!).zcard(`${prefix}b`), 1);
    assert.equal(await raw(one.urls[0]!).get(`${prefix}foreign`), 'x');
  });

  it('a group member whose key is not a channel queue is skipped; the other members still get the message', async () => {
    const prefix = freshPrefix();
    const layer = makeLayer({ hosts: one.urls, prefix });
    const errors: unknown[] = [];
    layer.on('error', (err) => errors.push(err));
    await raw(one.urls[0]!).set(`${prefix}foreign`, 'x');
    for (const channel of ['a', 'foreign', 'b']) await layer.groupAdd('mixed', channel);
    await layer.groupSend('mixed', { type: 'm' });
    assert.deepEqual(await layer.receive('a'), { type: 'm' });
    assert.deepEqual(await layer.receive('b'), { type: 'm' });
    assert.equal(await raw(one.urls[0]!).get(`${prefix}foreign`), 'x');
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /foreign.*not a channel queue/);
    assert.ok(errors[0] instanceof NotAChannelQueue);
    assert.equal(layer.stats().groupDeliveries, 2);
    assert.equal(layer.stats().groupDropped, 0);
  });

  it('a group key holding something else: groupAdd, groupDiscard and groupSend reject with NotAGroup, nothing written', async () => {
    const prefix = freshPrefix();
    const layer = makeLayer({ hosts: three.urls, prefix });
    const ch = await layer.newChannel();
    const key = `${prefix}:group:taken`;
    const client = raw(three.urls[layer.shardOf('taken', { group: true })]!);
    await client.set(key, 'x');
    for (const [call, what] of [
      [() => layer.groupAdd('taken', ch), 'groupAdd'],
      [() => layer.groupSend('taken', { type: 'm' }), 'groupSend'],
      [() => layer.groupDiscard('taken', ch), 'groupDiscard'],
    ] as const) {
      const err = await rejection(call());
      assert.ok(err instanceof NotAGroup, `${what}: ${String(err)}`);
      assert.equal(err.group, 'taken');
      assert.equal(err.key, key);
      assert.match(err.message, /taken.*not a group/);
    }
    assert.equal(await client.get(key), 'x');
    assert.equal(layer.stats().groupDeliveries, 0);
  });

  it('a key seen holding another type is read again once it is a queue (defect 5a)', async () => {
    const prefix = freshPrefix();
    const layer = makeLayer({ hosts: one.urls, prefix });
    const reported = once(layer, 'error');
    const ch = await layer.newChannel();
    // Every newChannel() of this layer shares this key: channels made later depend on it too.
    const key = `${prefix}${ch.slice(0, ch.indexOf('!') + 1)}`;
    const redis = raw(one.urls[0]!);
    await redis.set(key, 'x');
    // Bounded: without a second look at the key this receive is never served.
    const first = layer.receive(ch, { signal: AbortSignal.timeout(5000) });
    const [err] = (await reported) as [Error];
    assert.match(String(err), /is a string, not a channel queue/);
    await redis.del(key);
    await layer.send(ch, { type: 'after-del' });
    // Looked at again 1 s after it was found foreign.
    assert.deepEqual(await first, { type: 'after-del' });
    const later = await layer.newChannel();
    const second = layer.receive(later, { signal: AbortSignal.timeout(5000) });
    await layer.send(later, { type: 'later' });
    assert.deepEqual(await second, { type: 'later' });
    assert.equal(await redis.exists(key), 0);
  });

  it('a foreign key among the keys read loses no message popped from the others', async () => {
    const prefix = freshPrefix();
    const layer = makeLayer({ hosts: one.urls, prefix });
    const errors: unknown[] = [];
    layer.on('error', (err) => errors.push(err));
    const redis = raw(one.urls[0]!);
    await layer.send('good', { type: 'kept' });
    await redis.set(`${prefix}bad`, 'x');
    // Both wait before the reader's first read, 'good' first: one drain over both keys.
    const good = layer.receive('good', { signal: AbortSignal.timeout(5000) });
    void layer.receive('bad').catch(() => {});
    assert.deepEqual(await good, { type: 'kept' });
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /bad on shard 0 is a string/);
  });

  it("sends of one tick never make an argument over the server's proto-max-bulk-len", async () => {
    const small = await startRedis({ count: 1, args: ['--proto-max-bulk-len', '1mb'] });
    try {
      const layer = makeLayer({ hosts: small.urls, prefix: freshPrefix() });
      let disconnects = 0;
      layer.on('disconnect', () => disconnects++);
      const payload = 'y'.repeat(600_000);
      // Each fits alone; packed together they would be one 1.2 MB argument.
      const results = await Promise.allSettled([
        layer.send('big', { type: 'one', payload }),
        layer.send('big', { type: 'two', payload }),
        layer.send('small', { type: 'tiny' }),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'fulfilled', 'fulfilled'],
      );
      assert.equal((await layer.receive('big')).type, 'one');
      assert.equal((await layer.receive('big')).type, 'two');
      assert.equal(disconnects, 0);
      await layer.close();
    } finally {
      await small.stop();
    }
  });

  it('rejects bad names, bad messages, oversized messages, foreign process channels — never throws synchronously', async () => {
    const layer = makeLayer({ hosts: three.urls, prefix: freshPrefix(), maxMessageBytes: 1000 });
    const calls: Array<[() => Promise<unknown>, (err: Error) => boolean]> = [
      [() => layer.send('bad name', { type: 'x' }), (e) => e instanceof InvalidChannelName],
      [() => layer.send('a'.repeat(100), { type: 'x' }), (e) => e instanceof InvalidChannelName],
      [() => layer.send('ümlaut', { type: 'x' }), (e) => e instanceof InvalidChannelName],
      [() => layer.receive('bad name'), (e) => e instanceof InvalidChannelName],
      [() => layer.groupAdd('bad group!', 'ok'), (e) => e instanceof InvalidGroupName],
      [() => layer.groupAdd('ok', 'bad name'), (e) => e instanceof InvalidChannelName],
      [() => layer.groupDiscard('bad group!', 'ok'), (e) => e instanceof InvalidGroupName],
      [() => layer.groupSend('bad group!', { type: 'x' }), (e) => e instanceof InvalidGroupName],
      [() => layer.send('ok', 'not an object' as never), (e) => e instanceof TypeError],
      [() => layer.send('ok', { type: 'x', __asgi_channel__: 'y' }), (e) => e instanceof TypeError],
      [
        () => layer.send('ok', { type: 'x', items: [1, 2, 3, { when: () => 1 }] }),
        (e) => e instanceof TypeError && e.message.includes('message.items[3].when'),
      ],
      [
        () => layer.send('ok', { type: 'x', blob: 'y'.repeat(2000) }),
        (e) => e instanceof MessageTooLarge,
      ],
      [
        () => layer.groupSend('ok', { type: 'x', blob: 'y'.repeat(2000) }),
        (e) => e instanceof MessageTooLarge,
      ],
      [
        () => layer.receive(`specific.${'0'.repeat(32)}!abc`),
        (e) => e instanceof WrongClientPrefix && e.message.includes('Wrong client prefix'),
      ],
    ];
    for (const [call, check] of calls) {
      let promise: Promise<unknown> | undefined;
      assert.doesNotThrow(() => {
        promise = call();
      });
      const err = await rejection(promise!);
      assert.ok(check(err), `${call.toString()} → ${err.name}: ${err.message}`);
    }
    // Nothing reached Redis.
    assert.deepEqual(await keysOf(three.urls, 'ok'), []);
    // Messages up to the limit work (with a 4 MiB default limit too).
    await layer.send('ok', { type: 'x', blob: 'y'.repeat(900) });
    assert.equal(((await layer.receive('ok')).blob as string).length, 900);
    const big = makeLayer({ hosts: three.urls, prefix: freshPrefix() });
    const channel = await big.newChannel();
    const blob = randomBytes(4 * 1024 * 1024 - 300);
    await big.send(channel, { type: 'big', blob });
    assert.deepEqual(Buffer.from((await big.receive(channel)).blob as Uint8Array), blob);
  });

  it('after close() every method rejects saying the layer is closed', async () => {
    const layer = makeLayer({ hosts: three.urls, prefix: freshPrefix() });
    const channel = await layer.newChannel();
    await layer.close();
    await layer.close(); // idempotent
    for (const call of [
      () => layer.send('c', { type: 'x' }),
      () => layer.receive(channel),
      () => layer.newChannel(),
      () => layer.groupAdd('g', 'c'),
      () => layer.groupDiscard('g', 'c'),
      () => layer.groupSend('g', { type: 'x' }),
      () => layer.flush(),
      () => layer.deleteChannel(channel),
    ]) {
      const err = await rejection(call());
      assert.ok(err instanceof LayerClosed, String(err));
      assert.match(err.message, /closed/);
    }
  });

  it('fromConfig and the BACKEND paths build a RedisChannelLayer from a Django-style config', async () => {
    for (const BACKEND of [
      'chanlayer.RedisChannelLayer',
      'channels_redis.core.RedisChannelLayer',
    ]) {
      const layer = fromConfig({
        BACKEND,
        CONFIG: {
          hosts: three.urls,
          prefix: freshPrefix(),
          group_expiry: 10,
          channel_capacity: { 'x*': 1 },
        },
      }) as RedisChannelLayer;
      layers.push(layer);
      assert.ok(layer instanceof RedisChannelLayer);
      assert.deepEqual(layer.extensions, ['groups', 'flush']);
      await layer.send('xa', { type: 'x' });
      assert.ok((await rejection(layer.send('xa', { type: 'x' }))) instanceof ChannelFull);
    }
    assert.throws(() => new RedisChannelLayer({ hosts: 'redis://localhost' as never }), /list/);
    assert.throws(() => new RedisChannelLayer({ serializerFormat: 'nope' }), /nope/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('RedisChannelLayer: wire-protocol layout, read back from Redis', () => {
  it('channel keys, scores, 12-byte prefix, msgpack body, __asgi_channel__ forms, group keys, TTLs', async () => {
    const prefix = 'wire';
    const layer = makeLayer({ hosts: three.urls, prefix, expiry: 30, groupExpiry: 600 });
    const place = crc32Placement(3);
    const clients = three.urls.map((url) => raw(url));
    await layer.flush();
    const readQueue = async (name: string): Promise<Array<[Buffer, number]>> => {
      const key = prefix + name;
      const shard = place.index(name);
      for (let i = 0; i < 3; i++) {
        if (i !== shard)
          assert.equal(await clients[i]!.exists(key), 0, `${key} also on shard ${i}`);
      }
      const flat = await clients[shard]!.zrangeBuffer(key, 0, -1, 'WITHSCORES');
      const out: Array<[Buffer, number]> = [];
      for (let i = 0; i < flat.length; i += 2)
        out.push([flat[i]!, Number(flat[i + 1]!.toString())]);
      return out;
    };
    const body = (member: Buffer) => member.subarray(12);
    const nearNow = (score: number) =>
      assert.ok(Math.abs(score - Date.now() / 1000) < 5, `score ${score}`);

    // Normal channel: no __asgi_channel__.
    const message = { type: 'chat.message', text: 'héllo', n: 5, list: [1, 'two'], flag: true };
    await layer.send('wire-normal', message);
    let [[member, score]] = (await readQueue('wire-normal')) as [[Buffer, number]];
    nearNow(score);
    assert.deepEqual(body(member), Buffer.from(msgpackEncode(message)));
    const ttl = await clients[place.index('wire-normal')]!.pttl(`${prefix}wire-normal`);
    assert.ok(ttl > 25_000 && ttl <= 30_000, `pttl ${ttl}`);

    // Process-specific: key = prefix + non-local name, field = the full name.
    const ch1 = await layer.newChannel();
    const ch2 = await layer.newChannel();
    const nonLocal = ch1.slice(0, ch1.indexOf('!') + 1);
    assert.equal(nonLocal, `specific.${layer.clientPrefix}!`);
    await layer.send(ch1, { type: 'direct' });
    [[member, score]] = (await readQueue(nonLocal)) as [[Buffer, number]];
    nearNow(score);
    assert.deepEqual(
      body(member),
      Buffer.from(msgpackEncode({ type: 'direct', __asgi_channel__: ch1 })),
    );
    const first = member.subarray(0, 12);

    // Group key: members are full channel names, scores the time of group_add, group TTL.
    await layer.groupAdd('lobby', ch1);
    await layer.groupAdd('lobby', ch2);
    await layer.groupAdd('lobby', 'wire-normal');
    const groupShard = place.index('lobby');
    const groupKey = `${prefix}:group:lobby`;
    const groupFlat = await clients[groupShard]!.zrange(groupKey, 0, -1, 'WITHSCORES');
    assert.deepEqual(
      groupFlat.filter((_, i) => i % 2 === 0),
      [ch1, ch2, 'wire-normal'],
    );
    for (let i = 1; i < groupFlat.length; i += 2) nearNow(Number(groupFlat[i]));
    const groupTtl = await clients[groupShard]!.pttl(groupKey);
    assert.ok(groupTtl > 595_000 && groupTtl <= 600_000, `group pttl ${groupTtl}`);

    // group_send: one entry per channel key, __asgi_channel__ = every member sharing that key.
    await layer.groupSend('lobby', { type: 'broadcast', n: 1 });
    const specificQueue = await readQueue(nonLocal);
    assert.equal(specificQueue.length, 2);
    assert.deepEqual(
      body(specificQueue[1]![0]),
      Buffer.from(msgpackEncode({ type: 'broadcast', n: 1, __asgi_channel__: [ch1, ch2] })),
    );
    assert.ok(specificQueue[1]![1] > specificQueue[0]![1]);
    assert.notDeepEqual(specificQueue[1]![0].subarray(0, 12), first);
    const normalQueue = await readQueue('wire-normal');
    assert.deepEqual(
      body(normalQueue[1]![0]),
      Buffer.from(msgpackEncode({ type: 'broadcast', n: 1, __asgi_channel__: ['wire-normal'] })),
    );

    // Received as sent, routing field stripped.
    assert.deepEqual(await layer.receive(ch1), { type: 'direct' });
    assert.deepEqual(await layer.receive(ch1), { type: 'broadcast', n: 1 });
    assert.deepEqual(await layer.receive(ch2), { type: 'broadcast', n: 1 });
    assert.deepEqual(await layer.receive('wire-normal'), message);
    assert.deepEqual(await layer.receive('wire-normal'), { type: 'broadcast', n: 1 });
    await layer.flush();
  });

  it('with symmetricEncryptionKeys the body after the 12-byte prefix is a Fernet token', async () => {
    const prefix = freshPrefix();
    const layer = makeLayer({ hosts: one.urls, prefix, symmetricEncryptionKeys: ['s3cret'] });
    await layer.send('enc', { type: 'secret', n: 1 });
    const [member] = await raw(one.urls[0]!).zrangeBuffer(`${prefix}enc`, 0, -1);
    const token = member!.subarray(12).toString('latin1');
    assert.match(token, /^gAAAAA[A-Za-z0-9_-]+=*$/);
    assert.ok(!member!.includes(Buffer.from('secret')));
    assert.deepEqual(await layer.receive('enc'), { type: 'secret', n: 1 });
  });

  it('scores strictly increase per sender, so FIFO holds within one millisecond', async () => {
    const prefix = freshPrefix();
    const layer = makeLayer({ hosts: one.urls, prefix, capacity: 1000 });
    await Promise.all(
      Array.from({ length: 500 }, (_, seq) => layer.send('burst', { type: 'm', seq })),
    );
    const flat = await raw(one.urls[0]!).zrange(`${prefix}burst`, 0, -1, 'WITHSCORES');
    const scores = flat.filter((_, i) => i % 2 === 1).map(Number);
    for (let i = 1; i < scores.length; i++) assert.ok(scores[i]! > scores[i - 1]!, `score ${i}`);
  });
});

// ---------------------------------------------------------------------------------------------

/** The servers the semantics suite runs on: 1 and 3 hosts as named, or a cluster for both. */
interface SemanticsTarget {
  name: string;
  one(): HostEntry[];
  three(): HostEntry[];
  /** A client for looking at what is on shard `index` of three, or the one host (a cluster: routed by key). */
  client(index: number | typeof ONE): Redis;
}

/** `client(ONE)`: the server of `one()`. */
const ONE = Symbol('one host');

const semanticsTargets: SemanticsTarget[] = [
  {
    name: 'hosts',
    one: () => one.urls,
    three: () => three.urls,
    client: (index) => raw(index === ONE ? one.urls[0]! : three.urls[index]!),
  },
  {
    name: 'a Redis Cluster',
    one: () => [{ cluster: cluster.startupNodes() }],
    three: () => [{ cluster: cluster.startupNodes() }],
    client: () => rawCluster() as unknown as Redis,
  },
];

for (const T of semanticsTargets)
  describe(`RedisChannelLayer: semantics on ${T.name}`, () => {
    it('fractional expiry: keys get a PEXPIRE of expiry, old messages are trimmed on send and dropped on pop', async () => {
      const prefix = freshPrefix();
      // Fractional, and long enough for a send, its pop and the age check at delivery on a loaded
      // machine: with 0.1 s a message could expire before it was delivered, and its receive waited
      // forever (seen: the test timed out in a full run, and in 1 of ~40 runs under load).
      const layer = makeLayer({ hosts: T.three(), prefix, expiry: 1.5 });
      const shortKey = `${prefix}short`;
      const client = T.client(layer.shardOf('short'));
      // Older than expiry by its score (no sleep): the next send trims it.
      await client.zadd(shortKey, Date.now() / 1000 - 2, framed({ type: 'old', seq: 0 }));
      await layer.send('short', { type: 'new', seq: 1 });
      const ttl = await client.pttl(shortKey);
      assert.ok(ttl > 0 && ttl <= 1500, `pttl ${ttl}`);
      assert.equal(await client.zcard(shortKey), 1);
      assert.deepEqual(await layer.receive('short'), { type: 'new', seq: 1 });

      // A message already older than expiry when popped is dropped and counted.
      const specific = await layer.newChannel();
      const key = prefix + specific.slice(0, specific.indexOf('!') + 1);
      const shardClient = T.client(layer.shardOf(specific));
      // (Added after our send, which would have trimmed it.)
      await layer.send(specific, { type: 'fresh', seq: 2 });
      await shardClient.zadd(
        key,
        Date.now() / 1000 - 2,
        framed({ type: 'stale', __asgi_channel__: specific }),
      );
      assert.deepEqual(await layer.receive(specific), { type: 'fresh', seq: 2 });
      assert.equal(layer.stats().expired, 1);
    });

    it('local buffers expire (counted) and are bounded by capacity, dropping the oldest (counted)', async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: T.three(), prefix, expiry: 0.2, capacity: 5 });
      const quiet = await layer.newChannel();
      const busy = await layer.newChannel();
      const key = prefix + quiet.slice(0, quiet.indexOf('!') + 1);
      const client = T.client(layer.shardOf(quiet));
      // Start the reader with a receive on another channel of the same queue.
      const waiting = layer.receive(busy);
      await layer.send(quiet, { type: 'm', seq: 0 });
      await waitFor(async () => (await client.zcard(key)) === 0, {
        what: 'the reader to take the message',
      });
      await waitFor(() => layer.stats().expired === 1, { what: 'the buffered message to expire' });

      const layer2 = makeLayer({ hosts: T.three(), prefix, capacity: 5 });
      const ch = await layer2.newChannel();
      const key2 = prefix + ch.slice(0, ch.indexOf('!') + 1);
      const client2 = T.client(layer2.shardOf(ch));
      const other = layer2.receive(await layer2.newChannel());
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 5; i++) await layer2.send(ch, { type: 'm', seq: round * 5 + i });
        await waitFor(async () => (await client2.zcard(key2)) === 0, {
          what: 'the reader to buffer the batch',
        });
      }
      // The queue is empty once Redis ran the pop; the reply reaches the layer a moment later.
      await waitFor(() => (layer2.stats().localDropped ?? 0) >= 5, {
        what: 'the oldest 5 to be dropped',
      });
      assert.equal(layer2.stats().localDropped, 5);
      for (let seq = 5; seq < 10; seq++) assert.equal(((await layer2.receive(ch)) as Seq).seq, seq);
      await layer.send(busy, { type: 'end', seq: 0 });
      await waiting;
      await layer2.close();
      await assert.rejects(other, LayerClosed);
    });

    it('fractional groupExpiry: a membership older than groupExpiry gets nothing', async () => {
      const prefix = freshPrefix();
      // 1.5 s, not 0.1: the fresh add below must still count when its groupSend runs (as in the
      // expiry test above, a loaded machine can take longer than 0.1 s between the two).
      const layer = makeLayer({ hosts: T.three(), prefix, groupExpiry: 1.5 });
      const ch = await layer.newChannel();
      await layer.groupAdd('brief', ch);
      const groupKey = `${prefix}:group:brief`;
      const groupClient = T.client(layer.shardOf('brief', { group: true }));
      const ttl = await groupClient.pttl(groupKey);
      assert.ok(ttl > 0 && ttl <= 1500, `group pttl ${ttl}`);
      // The membership made older than groupExpiry by its score (no sleep).
      await groupClient.zadd(groupKey, Date.now() / 1000 - 2, ch);
      await layer.groupSend('brief', { type: 'late' });
      assert.equal(await receiveOrNothing(layer, ch, 200), undefined);
      // A fresh add works again.
      await layer.groupAdd('brief', ch);
      await layer.groupSend('brief', { type: 'on-time' });
      assert.deepEqual(await layer.receive(ch), { type: 'on-time' });
    });

    it('capacity is exact under 50 concurrent senders (never over)', async () => {
      const prefix = freshPrefix();
      const senders = Array.from({ length: 50 }, () =>
        makeLayer({ hosts: T.three(), prefix, channelCapacity: { contended: 10 } }),
      );
      const results = await Promise.allSettled(
        senders.flatMap((s, i) =>
          Array.from({ length: 5 }, (_, j) => s.send('contended', { type: 'm', seq: i * 5 + j })),
        ),
      );
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      const full = results.filter(
        (r) => r.status === 'rejected' && r.reason instanceof ChannelFull,
      ).length;
      assert.equal(ok, 10);
      assert.equal(full, 240);
      assert.equal(
        senders.reduce((sum, s) => sum + s.stats().capacityRejected!, 0),
        240,
      );
      const shard = senders[0]!.shardOf('contended');
      assert.equal(await T.client(shard).zcard(`${prefix}contended`), 10);
    });

    it('sends of one tick end as if made one by one: capacity per message and channel, in order, across keys', async () => {
      const prefix = freshPrefix();
      const receiver = makeLayer({ hosts: T.one(), prefix });
      const sender = makeLayer({
        hosts: T.one(),
        prefix,
        capacity: 2,
        channelCapacity: { '*!big-*': 4 },
      });
      // Two channels of one `…!` queue with different capacities, and a normal channel.
      const queue = (await receiver.newChannel()).replace(/!.*/, '!');
      const small = `${queue}small`;
      const big = `${queue}big-1`;
      const plan = [small, big, 'other', small, big, 'other', small, big, 'other'];
      const results = await Promise.allSettled(
        plan.map((channel, seq) => sender.send(channel, { type: 'm', seq })),
      );
      const outcome = results.map((r) =>
        r.status === 'fulfilled' ? 'ok' : r.reason instanceof ChannelFull ? 'full' : r.reason,
      );
      // The shared queue: small0, big1 ok; small3 finds 2 ≥ 2; big4 ok; small6 finds 3 ≥ 2; big7
      // finds 3 < 4. 'other' (capacity 2): 2 and 5 ok, 8 full.
      assert.deepEqual(outcome, ['ok', 'ok', 'ok', 'full', 'ok', 'ok', 'full', 'ok', 'full']);
      assert.equal(sender.stats().capacityRejected, 3);
      const client = T.client(ONE);
      const ttl = await client.pttl(`${prefix}${queue}`);
      assert.ok(ttl > 0 && ttl <= 60_000, `pttl ${ttl}`);
      assert.deepEqual(await receiver.receive(small), { type: 'm', seq: 0 });
      assert.deepEqual(await receiver.receive(big), { type: 'm', seq: 1 });
      assert.deepEqual(await receiver.receive(big), { type: 'm', seq: 4 });
      assert.deepEqual(await receiver.receive(big), { type: 'm', seq: 7 });
      assert.deepEqual(await receiver.receive('other'), { type: 'm', seq: 2 });
      assert.deepEqual(await receiver.receive('other'), { type: 'm', seq: 5 });
    });

    it('an unreadable payload is skipped, counted and logged (naming the key, not the secret); the next is delivered', async () => {
      const prefix = freshPrefix();
      const warnings: string[] = [];
      const layer = makeLayer({
        hosts: T.three(),
        prefix,
        symmetricEncryptionKeys: ['the-right-key'],
        logger: { warn: (m) => warnings.push(m) },
      });
      const ch = await layer.newChannel();
      const nonLocal = ch.slice(0, ch.indexOf('!') + 1);
      const client = T.client(layer.shardOf(ch));
      // Corrupt bytes, then a message encrypted with another key, then a good one.
      await client.zadd(
        prefix + nonLocal,
        Date.now() / 1000,
        Buffer.concat([randomBytes(12), Buffer.from([0xc1, 0xff])]),
      );
      const stranger = makeLayer({
        hosts: T.three(),
        prefix,
        symmetricEncryptionKeys: ['a-wrong-key'],
      });
      await stranger.send(ch, { type: 'foreign' });
      await layer.send(ch, { type: 'good' });
      assert.deepEqual(await layer.receive(ch), { type: 'good' });
      assert.equal(layer.stats().unreadable, 2);
      assert.equal(warnings.length, 2);
      for (const w of warnings) {
        assert.ok(w.includes(prefix + nonLocal), w);
        assert.ok(!w.includes('the-right-key') && !w.includes('a-wrong-key'), w);
      }
      // Plain (unencrypted) layer: a garbage member on a normal channel.
      const plain = makeLayer({ hosts: T.three(), prefix, logger: { warn: () => {} } });
      await T.client(plain.shardOf('garbled')).zadd(
        `${prefix}garbled`,
        Date.now() / 1000,
        Buffer.from('short'),
      );
      await plain.send('garbled', { type: 'fine' });
      assert.deepEqual(await plain.receive('garbled'), { type: 'fine' });
      assert.deepEqual(
        await plain.receive('garbled', { signal: AbortSignal.timeout(100) }).catch((e) => e.name),
        'TimeoutError',
      );
      assert.equal(plain.stats().unreadable, 1);
    });

    it('a message without __asgi_channel__ in a process queue is counted unreadable and logged, not buffered under the bare name', async () => {
      const prefix = freshPrefix();
      const warnings: string[] = [];
      const layer = makeLayer({
        hosts: T.one(),
        prefix,
        logger: { warn: (m) => warnings.push(m) },
      });
      const ch = await layer.newChannel();
      const bare = ch.slice(0, ch.indexOf('!') + 1);
      await T.client(ONE).zadd(prefix + bare, Date.now() / 1000, framed({ type: 'stray' }));
      await layer.send(ch, { type: 'good' });
      assert.deepEqual(await layer.receive(ch), { type: 'good' });
      assert.equal(layer.stats().unreadable, 1);
      assert.equal(warnings.length, 1);
      assert.ok(warnings[0]!.includes(prefix + bare) && warnings[0]!.includes('__asgi_channel__'));
      assert.equal(await receiveOrNothing(layer, bare, 200), undefined);
    });

    it("a deleted channel's messages stop holding its process queue's capacity: removed at delete, dropped when popped, counted", async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: T.three(), prefix, capacity: 100 });
      const newChannels = () => Promise.all(Array.from({ length: 50 }, () => layer.newChannel()));
      const first = await layer.newChannel();
      const key = prefix + first.slice(0, first.indexOf('!') + 1); // every channel's queue
      const client = T.client(layer.shardOf(first));
      // 50 channels get 2 messages each that nobody receives (their consumers went away first):
      // the process queue is at capacity, and nobody in the process waits on it.
      const gone = await newChannels();
      for (const ch of gone) for (const seq of [0, 1]) await layer.send(ch, { type: 'm', seq });
      assert.equal(await client.zcard(key), 100);
      assert.ok((await rejection(layer.send(first, { type: 'm', seq: 0 }))) instanceof ChannelFull);
      await Promise.all(gone.map((ch) => layer.deleteChannel(ch)));
      assert.equal(await client.zcard(key), 0);
      assert.equal(layer.stats().deletedDropped, 100);
      // The next 50 channels of the process: every send is accepted and received.
      const live = await newChannels();
      for (const ch of live) await layer.send(ch, { type: 'm', seq: 2 });
      for (const ch of live) assert.deepEqual(await layer.receive(ch), { type: 'm', seq: 2 });
      assert.equal(layer.stats().capacityRejected, 1);
      // A message already popped into a deleted channel's local buffer (a sibling received the
      // message sent after it) is counted when the delete drops it.
      const idle = await layer.newChannel();
      const served = layer.receive(live[0]!);
      await layer.send(idle, { type: 'm', seq: 3 });
      await layer.send(live[0]!, { type: 'm', seq: 4 });
      assert.deepEqual(await served, { type: 'm', seq: 4 });
      await layer.deleteChannel(idle);
      assert.equal(layer.stats().deletedDropped, 101);
      // A message reaching a deleted channel's queue after its delete is dropped when popped.
      await layer.send(gone[0]!, { type: 'late', seq: 5 });
      await layer.send(live[0]!, { type: 'm', seq: 6 });
      assert.deepEqual(await layer.receive(live[0]!), { type: 'm', seq: 6 });
      assert.equal(layer.stats().deletedDropped, 102);
      assert.equal(layer.stats().received, 52);
      // A receive on a deleted name makes it live again: what comes after is kept for it too.
      const back = layer.receive(gone[1]!);
      await layer.send(gone[1]!, { type: 'again', seq: 7 });
      assert.deepEqual(await back, { type: 'again', seq: 7 });
      // Popped while nobody waits on it (a sibling's receive), so buffered for it, not dropped.
      const marker = layer.receive(live[0]!);
      await layer.send(gone[1]!, { type: 'again', seq: 8 });
      await layer.send(live[0]!, { type: 'm', seq: 9 });
      assert.deepEqual(await marker, { type: 'm', seq: 9 });
      assert.equal(layer.stats().deletedDropped, 102);
      assert.deepEqual(await layer.receive(gone[1]!), { type: 'again', seq: 8 });
    });

    it("deleteChannel removes only messages whose channels are all deleted: a live channel's, or a group message with a live member, stay", async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: T.three(), prefix, symmetricEncryptionKeys: ['k'] });
      const [a, b, c] = [
        await layer.newChannel(),
        await layer.newChannel(),
        await layer.newChannel(),
      ];
      const key = prefix + a.slice(0, a.indexOf('!') + 1);
      const client = T.client(layer.shardOf(a));
      await layer.groupAdd('pair', a);
      await layer.groupAdd('pair', b);
      await layer.send(a, { type: 'm', seq: 0 });
      await layer.send(b, { type: 'm', seq: 1 });
      await layer.groupSend('pair', { type: 'g', seq: 2 }); // one member, for a and b
      await layer.send(c, { type: 'm', seq: 3 });
      assert.equal(await client.zcard(key), 4);
      await layer.deleteChannel(b);
      assert.equal(await client.zcard(key), 3);
      assert.equal(layer.stats().deletedDropped, 1);
      // The second pass knows the members from the first: a's two go now, the group one for both.
      await layer.deleteChannel(a);
      assert.equal(await client.zcard(key), 1);
      assert.equal(layer.stats().deletedDropped, 4);
      assert.deepEqual(await layer.receive(c), { type: 'm', seq: 3 });
    });

    it('deleteChannel leaves every group this layer added it to and drops its buffer', async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: T.three(), prefix });
      const ch = await layer.newChannel();
      const keep = await layer.newChannel();
      for (const g of ['g1', 'g2', 'g3']) await layer.groupAdd(g, ch);
      await layer.groupAdd('g1', keep);
      // Buffer one message locally for ch: ch and keep share this layer's queue, which is FIFO,
      // so once keep has the marker sent after it, ch's message sits in the local buffer.
      const marker = layer.receive(keep);
      await layer.send(ch, { type: 'buffered' });
      await layer.send(keep, { type: 'marker' });
      assert.deepEqual(await marker, { type: 'marker' });
      await layer.deleteChannel(ch);
      for (const g of ['g1', 'g2', 'g3']) {
        const members = await T.client(layer.shardOf(g, { group: true })).zrange(
          `${prefix}:group:${g}`,
          0,
          -1,
        );
        assert.ok(!members.includes(ch), g);
      }
      assert.equal(await receiveOrNothing(layer, ch, 200), undefined);
      const waiting = layer.receive(keep);
      await layer.groupSend('g1', { type: 'still-here' });
      assert.deepEqual(await waiting, { type: 'still-here' });
    });

    it('a groupAdd or groupDiscard not awaited still comes before a groupSend issued after it', async () => {
      const layer = makeLayer({ hosts: T.one(), prefix: freshPrefix() });
      const [joined, left] = [await layer.newChannel(), await layer.newChannel()];
      await layer.groupAdd('ordered', left);
      await layer.groupSend('ordered', { type: 'warm-up' }); // the shard is connected and checked
      assert.deepEqual(await layer.receive(left), { type: 'warm-up' });
      const adding = layer.groupAdd('ordered', joined);
      const discarding = layer.groupDiscard('ordered', left);
      await layer.groupSend('ordered', { type: 'after' });
      await Promise.all([adding, discarding]);
      const got = await layer.receive(joined, { signal: AbortSignal.timeout(5000) });
      assert.deepEqual(got, { type: 'after' });
      assert.equal(await receiveOrNothing(layer, left, 200), undefined);
    });

    it('... a groupAdd not awaited, whose script meets NOSCRIPT and is sent again, too', async () => {
      const layer = makeLayer({ hosts: T.one(), prefix: freshPrefix() });
      const [first, late] = [await layer.newChannel(), await layer.newChannel()];
      await layer.groupAdd('reloaded', first); // the connection now sends group_add by EVALSHA
      await T.client(ONE).script('FLUSH');
      const adding = layer.groupAdd('reloaded', late); // NOSCRIPT, then EVAL a round trip later
      await new Promise((resolve) => setImmediate(resolve)); // its pipeline is written, running
      await layer.groupSend('reloaded', { type: 'after' });
      await adding;
      const got = await layer.receive(late, { signal: AbortSignal.timeout(5000) });
      assert.deepEqual(got, { type: 'after' });
    });

    it('once a group message reached every waiting member, their queue is not read any more', async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: T.one(), prefix });
      const chans = [await layer.newChannel(), await layer.newChannel(), await layer.newChannel()];
      for (const c of chans) await layer.groupAdd('served', c);
      const got = Promise.all(chans.map((c) => layer.receive(c)));
      await layer.groupSend('served', { type: 'g' });
      await got;
      // The reader keeps running for another channel; a message for a served member written
      // before that channel's must stay in Redis (a reader still watching their queue would
      // have popped it first).
      const elsewhere = layer.receive('elsewhere');
      await layer.send(chans[0]!, { type: 'later' });
      await layer.send('elsewhere', { type: 'done' });
      await elsewhere;
      const key = prefix + chans[0]!.slice(0, chans[0]!.indexOf('!') + 1);
      assert.equal(await T.client(ONE).zcard(key), 1);
      assert.deepEqual(await layer.receive(chans[0]!), { type: 'later' });
    });

    it('a group message to idle members leaves the demand of a non-member on their queue intact', async () => {
      // Each member's receive is the channel's only state (a lone waiter): the fan-out must count
      // its hand-over once, or the queue's demand drops below the receivers still waiting on it.
      const layer = makeLayer({ hosts: T.one(), prefix: freshPrefix() });
      const chans = [await layer.newChannel(), await layer.newChannel(), await layer.newChannel()];
      for (const c of chans) await layer.groupAdd('rounds', c);
      const bystander = await layer.newChannel(); // same queue key, not in the group
      const later = layer.receive(bystander, { signal: AbortSignal.timeout(5000) });
      for (let round = 0; round < 2; round++) {
        const got = Promise.all(chans.map((c) => layer.receive(c)));
        await layer.groupSend('rounds', { type: 'g', round });
        assert.deepEqual(
          (await got).map((m) => m.round),
          [round, round, round],
        );
      }
      await layer.send(bystander, { type: 'direct' });
      assert.deepEqual(await later, { type: 'direct' });
    });

    it('a stalled consumer keeps its queue in Redis: senders get ChannelFull at capacity, nothing is dropped locally', async () => {
      const prefix = freshPrefix();
      const receiver = makeLayer({ hosts: T.three(), prefix });
      const sender = makeLayer({ hosts: T.three(), prefix, capacity: 20 });
      const slow = await receiver.newChannel();
      // The reader is running (a receive waits on a normal channel), but nobody waits on `slow`.
      const elsewhere = receiver.receive('elsewhere');
      for (let seq = 0; seq < 20; seq++) await sender.send(slow, { type: 'm', seq });
      assert.ok(
        (await rejection(sender.send(slow, { type: 'm', seq: 20 }))) instanceof ChannelFull,
      );
      for (let seq = 0; seq < 20; seq++)
        assert.equal(((await receiver.receive(slow)) as Seq).seq, seq);
      assert.equal(receiver.stats().localDropped, 0);
      await sender.send('elsewhere', { type: 'done', seq: 0 });
      await elsewhere;
    });

    it('normal-channel prefetch: what one receiver does not claim goes back to its queue within ms (and on close), for another process', async () => {
      const prefix = freshPrefix();
      const greedy = makeLayer({ hosts: T.one(), prefix });
      const other = makeLayer({ hosts: T.one(), prefix });
      const client = T.client(ONE);
      const key = `${prefix}work`;
      // Grow greedy's window: it claims whole batches while it keeps up.
      for (let seq = 0; seq < 100; seq++) await greedy.send('work', { type: 'm', seq });
      for (let seq = 0; seq < 60; seq++)
        assert.deepEqual(await greedy.receive('work'), { type: 'm', seq });
      // Then it stops receiving: whatever it prefetched is back in Redis shortly, with an expiry,
      // in order for another consumer.
      await waitFor(async () => (await client.zcard(key)) === 40, {
        what: 'the prefetch to be given back',
      });
      assert.ok((await client.pttl(key)) > 0);
      for (let seq = 60; seq < 100; seq++)
        assert.deepEqual(await other.receive('work'), { type: 'm', seq });
      // close() gives back too: nothing a closed layer prefetched is lost.
      for (let seq = 0; seq < 10; seq++) await other.send('work', { type: 'n', seq });
      assert.deepEqual(await greedy.receive('work'), { type: 'n', seq: 0 });
      await greedy.close();
      for (let seq = 1; seq < 10; seq++)
        assert.deepEqual(await other.receive('work'), { type: 'n', seq });
    });

    it("restores a channels_redis receiver's leftover $inflight backup into a normal channel's queue", async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: T.one(), prefix });
      const client = T.client(ONE);
      const now = Date.now() / 1000;
      // A Python receiver popped `first` into its backup and died; `second` is still queued.
      await client.zadd(`${prefix}legacy$inflight`, now - 2, framed({ type: 'first' }));
      await client.zadd(`${prefix}legacy`, now - 1, framed({ type: 'second' }));
      assert.deepEqual(await layer.receive('legacy'), { type: 'first' });
      assert.deepEqual(await layer.receive('legacy'), { type: 'second' });
      assert.equal(await client.exists(`${prefix}legacy$inflight`), 0);
    });

    it('a receive on a new key ends a block in progress (wake key, no CLIENT UNBLOCK), no block timeout is waited out', async () => {
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: T.one(), prefix });
      const client = T.client(ONE);
      const unblocks = async () =>
        Number(
          /cmdstat_client\|unblock:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0,
        );
      const before = await unblocks();
      const first = layer.receive('first-key');
      // Wait until the reader is blocked on first-key (observable in CLIENT LIST).
      await waitFor(
        async () =>
          /name=chanlayer:blocking .*cmd=bzpopmin/.test(
            String(await client.call('CLIENT', 'LIST')),
          ),
        { what: 'the reader to block' },
      );
      const second = layer.receive('second-key');
      const start = performance.now();
      await client.zadd(`${prefix}second-key`, Date.now() / 1000, framed({ type: 'second' }));
      assert.deepEqual(await second, { type: 'second' });
      assert.ok(performance.now() - start < 1000);
      assert.equal(await unblocks(), before, 'no CLIENT UNBLOCK (@dangerous: README)');
      // The wake (wake.lua) was popped by the block it ended: nothing is left behind.
      assert.equal(await client.exists(`${prefix}:wake:${layer.clientPrefix}`), 0);
      await layer.send('first-key', { type: 'first' });
      assert.deepEqual(await first, { type: 'first' });
    });

    it('stats() reports every counter', async () => {
      const layer = makeLayer({ hosts: T.one(), prefix: freshPrefix() });
      assert.deepEqual(Object.keys(layer.stats()).sort(), [
        'capacityRejected',
        'deadRemoved',
        'deletedDropped',
        'disconnects',
        'expired',
        'failovers',
        'groupDeliveries',
        'groupDropped',
        'groupSends',
        'localDropped',
        'membershipsRestored',
        'received',
        'reconnects',
        'sent',
        'unreadable',
      ]);
      const s = layer.stats();
      s.sent = 99;
      assert.equal(layer.stats().sent, 0);
    });
  });

// ---------------------------------------------------------------------------------------------

/** Where the aborted-receives torture runs: 3 hosts (one channel per shard), or a cluster. */
const tortureTargets = [
  {
    name: 'across 3 shards',
    hosts: (): HostEntry[] => three.urls,
    channel: (layer: RedisChannelLayer, i: number) => channelOnShard(layer, i),
    /** A channels_redis-style writer's client for `channel` (placed by the full name, #221). */
    writer: (channel: string) => raw(three.urls[crc32Placement(3).index(channel)]!),
  },
  {
    name: 'on a Redis Cluster',
    hosts: (): HostEntry[] => [{ cluster: cluster.startupNodes() }],
    channel: (layer: RedisChannelLayer, i: number) => layer.newChannel(`torture${i}`),
    writer: () => rawCluster() as unknown as Redis,
  },
];

describe('RedisChannelLayer: aborted receives lose and duplicate nothing', () => {
  for (const T of tortureTargets)
    it(`thousands of receives aborted at random moments ${T.name}: every message once, in order per sender`, async () => {
      const prefix = freshPrefix();
      const receiver = makeLayer({ hosts: T.hosts(), prefix });
      const senders = [0, 1, 2].map(() =>
        makeLayer({ hosts: T.hosts(), prefix, capacity: 10_000 }),
      );
      const channels = [
        await T.channel(receiver, 0),
        await T.channel(receiver, 1),
        await T.channel(receiver, 2),
        'torture-normal',
      ];
      const PER_SENDER = 300;
      // Senders: the three layers, plus a channels_redis-style writer placing `!` messages by the
      // full name (#221) — each sender's messages on one channel stay on one shard.
      const sendAll = async (): Promise<void> => {
        await Promise.all(
          channels.flatMap((channel) => [
            ...senders.map(async (s, i) => {
              for (let seq = 0; seq < PER_SENDER; seq++) {
                await s.send(channel, { type: 't', sender: `s${i}`, seq });
                if (seq % 50 === 0) await delay(randomInt(3));
              }
            }),
            (async () => {
              if (!channel.includes('!')) return;
              const client = T.writer(channel);
              const key = prefix + channel.slice(0, channel.indexOf('!') + 1);
              for (let seq = 0; seq < PER_SENDER; seq++) {
                await client.zadd(
                  key,
                  Date.now() / 1000 + seq * 1e-6,
                  framed({ type: 't', sender: 'py', seq, __asgi_channel__: channel }),
                );
              }
            })(),
          ]),
        );
      };
      let aborted = 0;
      const receiveAll = async (channel: string, expected: number): Promise<Seq[]> => {
        const got: Seq[] = [];
        while (got.length < expected) {
          const controller = new AbortController();
          const pending = receiver.receive(channel, { signal: controller.signal });
          switch (randomInt(5)) {
            case 0:
              controller.abort();
              break;
            case 1:
              queueMicrotask(() => controller.abort());
              break;
            case 2:
              setImmediate(() => controller.abort());
              break;
            case 3:
              setTimeout(() => controller.abort(), randomInt(3));
              break;
            default:
              break; // not aborted
          }
          try {
            got.push((await pending) as Seq);
          } catch (err) {
            assert.equal((err as Error).name, 'AbortError');
            aborted++;
          }
        }
        return got;
      };
      const expectedFor = (c: string) => PER_SENDER * (c.includes('!') ? 4 : 3);
      const [results] = await Promise.all([
        Promise.all(channels.map((c) => receiveAll(c, expectedFor(c)))),
        sendAll(),
      ]);
      assert.ok(aborted >= 1000, `only ${aborted} receives were aborted`);
      channels.forEach((channel, i) => {
        const bySender = new Map<string, number[]>();
        for (const m of results[i]!) {
          const list = bySender.get(m.sender!) ?? [];
          list.push(m.seq);
          bySender.set(m.sender!, list);
        }
        for (const [sender, seqs] of bySender) {
          assert.deepEqual(
            seqs,
            Array.from({ length: PER_SENDER }, (_, k) => k),
            `${channel} from ${sender}`,
          );
        }
        assert.equal(bySender.size, channel.includes('!') ? 4 : 3);
      });
      // Nothing left over anywhere.
      for (const c of channels) assert.equal(await receiveOrNothing(receiver, c, 100), undefined);
      assert.equal(
        receiver.stats().received,
        channels.reduce((n, c) => n + expectedFor(c), 0),
      );
    });
});

// ---------------------------------------------------------------------------------------------

describe('RedisChannelLayer: sharding', () => {
  it('ring: adding a 4th host moves about 1/4 of the names, all to the new host; crc32 moves far more', async () => {
    const four = await startRedis({ count: 1 });
    try {
      const hosts3 = three.urls;
      const hosts4 = [...three.urls, four.urls[0]!];
      const ring3 = makeLayer({ hosts: hosts3, sharding: 'ring', prefix: freshPrefix() });
      const ring4 = makeLayer({ hosts: hosts4, sharding: 'ring', prefix: freshPrefix() });
      const crc3 = makeLayer({ hosts: hosts3 });
      const crc4 = makeLayer({ hosts: hosts4 });
      const names = Array.from({ length: 20_000 }, (_, i) => `channel-${i}`);
      const moved = names.filter((n) => ring3.shardOf(n) !== ring4.shardOf(n));
      const fraction = moved.length / names.length;
      assert.ok(fraction > 0.18 && fraction < 0.32, `ring moved ${fraction}`);
      for (const n of moved) assert.equal(ring4.shardOf(n), 3);
      const crcMoved =
        names.filter((n) => crc3.shardOf(n) !== crc4.shardOf(n)).length / names.length;
      assert.ok(crcMoved > 0.4, `crc32 moved ${crcMoved}`);
      // Each host holds a fair share, and the data really lands where shardOf says.
      const counts = [0, 0, 0, 0];
      for (const n of names) counts[ring4.shardOf(n)]!++;
      for (const c of counts) assert.ok(c > names.length * 0.15, `share ${counts}`);
      const prefix = freshPrefix();
      const layer = makeLayer({ hosts: hosts4, sharding: 'ring', prefix });
      for (const n of names.slice(0, 40)) await layer.send(n, { type: 'x' });
      for (const n of names.slice(0, 40)) {
        assert.equal(await raw(hosts4[layer.shardOf(n)]!).exists(prefix + n), 1, n);
      }
      const ch = await layer.newChannel();
      await layer.groupAdd('ring-group', ch);
      await layer.groupSend('ring-group', { type: 'ring' });
      assert.deepEqual(await layer.receive(ch), { type: 'ring' });
      for (const n of names.slice(0, 40)) assert.deepEqual(await layer.receive(n), { type: 'x' });
    } finally {
      await Promise.all(layers.splice(0).map((l) => l.close()));
      await four.stop();
    }
  });

  it("normalChannelSharding: 'round-robin' spreads a normal channel's sends over the hosts, as channels_redis does", async () => {
    const prefix = freshPrefix();
    const byName = makeLayer({ hosts: three.urls, prefix });
    const rr = makeLayer({ hosts: three.urls, prefix, normalChannelSharding: 'round-robin' });
    const clients = three.urls.map((u) => raw(u));
    for (let seq = 0; seq < 6; seq++) await byName.send('by-name', { type: 'm', seq });
    for (let seq = 0; seq < 6; seq++) await rr.send('spread', { type: 'm', seq });
    const counts = async (name: string) => Promise.all(clients.map((c) => c.zcard(prefix + name)));
    assert.deepEqual((await counts('by-name')).sort(), [0, 0, 6]);
    assert.deepEqual(await counts('spread'), [2, 2, 2]);
    // A channels_redis receiver's i-th receive waits on host i mod n: each finds one.
    for (let i = 0; i < 3; i++) {
      const popped = await clients[i]!.bzpopminBuffer(prefix + 'spread', 1);
      assert.ok(popped, `host ${i}`);
    }
    // A chanlayer receiver reads every host; process-local channels keep their placement.
    const got = [];
    for (let i = 0; i < 3; i++) got.push(((await rr.receive('spread')) as Seq).seq);
    assert.deepEqual(got.sort(), [3, 4, 5]);
    const ch = await byName.newChannel();
    await rr.send(ch, { type: 'direct', seq: 0 });
    assert.equal(
      await clients[byName.shardOf(ch)]!.zcard(prefix + ch.slice(0, ch.indexOf('!') + 1)),
      1,
    );
    assert.throws(
      () => new RedisChannelLayer({ normalChannelSharding: 'random' as never }),
      /normalChannelSharding/,
    );
  });

  it('groupSend to 100,000 members chunks its script calls and reaches every key', async () => {
    const prefix = freshPrefix();
    const layer = makeLayer({ hosts: three.urls, prefix });
    const N = 100_000;
    const clients = three.urls.map((u) => raw(u));
    // Members added directly (as many processes would), all normal channels: 100,000 keys.
    const byShard = new Map<number, string[]>();
    const place = crc32Placement(3);
    const groupShard = place.index('huge');
    const now = Date.now() / 1000;
    const pipeline = clients[groupShard]!.pipeline();
    for (let i = 0; i < N; i++) {
      const c = `member-${i}`;
      pipeline.zadd(`${prefix}:group:huge`, now, c);
      const list = byShard.get(place.index(c)) ?? [];
      list.push(c);
      byShard.set(place.index(c), list);
    }
    await pipeline.exec();
    const before = await Promise.all(clients.map((c) => c.info('commandstats')));
    const calls = (info: string) =>
      Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0) +
      Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0);
    const started = performance.now();
    await layer.groupSend('huge', { type: 'to-all' });
    const ms = performance.now() - started;
    const afterInfo = await Promise.all(clients.map((c) => c.info('commandstats')));
    let scriptCalls = 0;
    for (let i = 0; i < 3; i++) scriptCalls += calls(afterInfo[i]!) - calls(before[i]!);
    // ≥ 100 group_send chunks (1,000 keys each) + the member read.
    assert.ok(scriptCalls >= 101, `${scriptCalls} script calls`);
    assert.equal(layer.stats().groupDeliveries, N);
    for (const [shard, names] of byShard) {
      const sample = names.filter((_, i) => i % 997 === 0);
      for (const n of sample) assert.equal(await clients[shard]!.zcard(prefix + n), 1, n);
    }
    // The slowest single command stayed short (no multi-second Redis stall).
    for (const c of clients) {
      const slow = (await c.call('SLOWLOG', 'GET', '5')) as Array<
        [number, number, number, string[]]
      >;
      for (const entry of slow) {
        if (String(entry[3]?.[0]).toLowerCase().startsWith('eval'))
          assert.ok(entry[2] < 500_000, `slow: ${entry[2]} µs`);
      }
    }
    assert.ok(ms < 60_000);
    await layer.flush();
  });
});

// ---------------------------------------------------------------------------------------------

describe('RedisChannelLayer: connections', () => {
  it("a shard going down: 'disconnect', bounded send failure, 'reconnect', the reader recovers", async () => {
    const group = await startRedis({ count: 3 });
    try {
      const disconnects: number[] = [];
      const reconnects: number[] = [];
      const layer = makeLayer({
        hosts: group.urls,
        prefix: freshPrefix(),
        commandTimeoutMs: 500,
        onDisconnect: (i) => disconnects.push(i),
        logger: { warn: () => {} },
      });
      layer.on('reconnect', (i: number) => reconnects.push(i));
      const ch = await channelOnShard(layer, 1);
      await layer.flush(); // every command connection is up
      const firstReceive = layer.receive(ch);
      await layer.send(ch, { type: 'before' });
      assert.deepEqual(await firstReceive, { type: 'before' });

      const disconnected = once(layer, 'disconnect');
      await group.servers[1]!.kill();
      assert.deepEqual(await disconnected, [1]);
      assert.deepEqual(disconnects, [1]);
      const started = Date.now();
      const err = await rejection(layer.send(ch, { type: 'while-down' }));
      const took = Date.now() - started;
      assert.match(err.message, /shard 1|Connection|ECONNREFUSED/);
      assert.ok(took < 3000, `send failed after ${took} ms`);
      // Other shards keep working.
      const other = await channelOnShard(layer, 0);
      await layer.send(other, { type: 'other-shard' });
      assert.deepEqual(await layer.receive(other), { type: 'other-shard' });

      const reconnected = once(layer, 'reconnect');
      await group.servers[1]!.restart();
      assert.deepEqual(await reconnected, [1]);
      assert.ok(layer.stats().reconnects! >= 1);
      assert.ok(layer.stats().disconnects! >= 1);
      const afterReceive = layer.receive(ch);
      await layer.send(ch, { type: 'after' });
      assert.deepEqual(await afterReceive, { type: 'after' });
      assert.ok(reconnects.includes(1));
    } finally {
      await Promise.all(layers.splice(0).map((l) => l.close()));
      await group.stop();
    }
  });

  it('close() with receives pending rejects them, and the process exits on its own', async () => {
    const code = `
      import { RedisChannelLayer, LayerClosed } from './lib/index.ts';
      const layer = new RedisChannelLayer({ hosts: JSON.parse(process.env.HOSTS), prefix: 'exit-test' });
      const ch = await layer.newChannel();
      await layer.send('warmup', { type: 'w' });
      const pending = [layer.receive(ch), layer.receive('normal-pending'), layer.receive(ch)];
      await layer.receive('warmup');
      await layer.close();
      const results = await Promise.allSettled(pending);
      console.log(JSON.stringify(results.map((r) => r.status === 'rejected' && r.reason instanceof LayerClosed)));
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: path.join(import.meta.dirname, '..'),
      env: { ...process.env, HOSTS: JSON.stringify(three.urls) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [exitCode, signal] = (await once(child, 'exit')) as [number | null, string | null];
    clearTimeout(timer);
    assert.equal(signal, null, 'the child had to be killed: something kept it alive');
    assert.equal(exitCode, 0);
    assert.equal(out.trim(), '[true,true,true]');
  });

  it('a Redis older than 5.0 is refused with a clear error', async () => {
    // A fake server that answers like Redis 4.0 (no HELLO before Redis 6).
    const server = net.createServer((socket) => {
      socket.on('data', (chunk) => {
        const text = chunk.toString();
        const commands = text.split('*').filter((s) => s.length > 0);
        for (const command of commands) {
          if (/hello/i.test(command)) socket.write("-ERR unknown command 'HELLO'\r\n");
          else if (/info/i.test(command)) {
            const body = '# Server\r\nredis_version:4.0.14\r\nloading:0\r\n';
            socket.write(`$${Buffer.byteLength(body)}\r\n${body}\r\n`);
          } else socket.write('+OK\r\n');
        }
      });
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    try {
      const layer = makeLayer({ hosts: [`redis://127.0.0.1:${port}`], commandTimeoutMs: 2000 });
      const err = await rejection(layer.send('c', { type: 'x' }));
      assert.match(err.message, /4\.0.*too old.*5\.0/);
      await layer.close();
    } finally {
      server.close();
    }
  });

  it('rediss:// (TLS) with a CA given as an ioredis option', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chanlayer-tls-'));
    try {
      const cert = path.join(dir, 'cert.pem');
      const key = path.join(dir, 'key.pem');
      const made = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        cert,
      ]);
      assert.equal(made.status, 0, String(made.stderr));
      const tlsPort = await freePort();
      const server = await startRedis({
        args: [
          '--tls-port',
          String(tlsPort),
          '--tls-cert-file',
          cert,
          '--tls-key-file',
          key,
          '--tls-ca-cert-file',
          cert,
          '--tls-auth-clients',
          'no',
        ],
      });
      try {
        const layer = makeLayer({
          hosts: [{ address: `rediss://127.0.0.1:${tlsPort}`, tls: { ca: fs.readFileSync(cert) } }],
          prefix: freshPrefix(),
        });
        const ch = await layer.newChannel();
        await layer.send(ch, { type: 'over-tls' });
        assert.deepEqual(await layer.receive(ch), { type: 'over-tls' });
        await layer.groupAdd('tls-group', ch);
        await layer.groupSend('tls-group', { type: 'group-over-tls' });
        assert.deepEqual(await layer.receive(ch), { type: 'group-over-tls' });
        // Both the command and the blocking connection came in over TLS.
        const list = String(await raw(server.urls[0]!).call('CLIENT', 'LIST'));
        assert.match(list, /name=chanlayer:command/);
        assert.match(list, /name=chanlayer:blocking/);
        const plainPort = new URL(server.urls[0]!).port;
        for (const line of list.split('\n').filter((l) => l.includes('name=chanlayer'))) {
          assert.ok(line.includes(`laddr=127.0.0.1:${tlsPort}`), line);
          assert.ok(!line.includes(`laddr=127.0.0.1:${plainPort}`), line);
        }
      } finally {
        await Promise.all(layers.splice(0).map((l) => l.close()));
        await server.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ACL username and password from the URL', async () => {
    const admin = raw(one.urls[0]!);
    await admin.call('ACL', 'SETUSER', 'chanuser', 'on', '>pa55word', '~*', '&*', '+@all');
    try {
      const url = one.urls[0]!.replace('redis://', 'redis://chanuser:pa55word@');
      const layer = makeLayer({ hosts: [url], prefix: freshPrefix() });
      const ch = await layer.newChannel();
      await layer.send(ch, { type: 'acl' });
      assert.deepEqual(await layer.receive(ch), { type: 'acl' });
      const list = (await admin.call('CLIENT', 'LIST')) as string;
      assert.match(
        list,
        /user=chanuser .*name=chanlayer:blocking|name=chanlayer:blocking.*user=chanuser/,
      );
    } finally {
      await admin.call('ACL', 'DELUSER', 'chanuser');
    }
  });
});
