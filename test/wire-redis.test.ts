/**
 * What lands in Redis, read back raw: chanlayer and channels_redis 4.0.0 doing the same operation
 * must leave the same keys, types, scores, TTLs and bytes (modulo the 12 random bytes and Fernet's
 * IV/time), and Pub/Sub payloads must be identical on the wire. docs/wire-protocol.md describes
 * every item checked here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisChannelLayer, RedisPubSubChannelLayer } from '../lib/index.ts';
import { startRedis, type RedisGroup } from './harness/redis.ts';
import { PythonPeer, type PyLayer, soon } from './interop/peer.ts';
import { tag } from './interop/tagged.ts';

let redis: RedisGroup;
let peer: PythonPeer;
let raw: Redis;

before(async () => {
  [redis, peer] = await Promise.all([startRedis({ count: 1 }), PythonPeer.start()]);
  raw = new Redis(redis.urls[0]!);
});
after(async () => {
  raw?.disconnect();
  await peer?.stop();
  await redis?.stop();
});

interface Entry {
  member: Buffer;
  score: number;
}

async function zset(key: string): Promise<Entry[]> {
  const flat = await raw.zrangeBuffer(key, 0, -1, 'WITHSCORES');
  const out: Entry[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    out.push({ member: flat[i]!, score: Number(flat[i + 1]!.toString()) });
  }
  return out;
}

const body = (e: Entry): string => e.member.subarray(12).toString('hex');
const nowSeconds = (): number => Date.now() / 1000;

describe('core layer: the same operation leaves the same data', () => {
  const prefix = 'wire:';
  const message = {
    type: 'chat.message',
    text: 'héllo ☃',
    n: 2 ** 40,
    b: new Uint8Array([0, 255]),
  };
  let node: RedisChannelLayer;
  let py: PyLayer;

  before(async () => {
    // This Node layer never receives, so its reader never drains anything we inspect.
    node = new RedisChannelLayer({ hosts: redis.urls, prefix, expiry: 60, groupExpiry: 600 });
    py = await peer.core({ hosts: redis.urls, prefix, expiry: 60, group_expiry: 600 });
  });
  after(async () => {
    await node?.flush();
    await node?.close();
    await py?.close();
  });

  it('send to a normal channel: key prefix+name, ZSET, float send-time scores, TTL = expiry, 12 random bytes + the same msgpack body', async () => {
    const t0 = nowSeconds();
    await node.send('chat', message);
    await py.send('chat', message);
    const t1 = nowSeconds();
    assert.equal(await raw.type(`${prefix}chat`), 'zset');
    const entries = await zset(`${prefix}chat`);
    assert.equal(entries.length, 2);
    const [a, b] = entries as [Entry, Entry];
    assert.equal(body(a), body(b), 'same msgpack body');
    assert.equal(body(a), (await peer.pack(tag(message))).toString('hex'));
    assert.notEqual(
      a.member.subarray(0, 12).toString('hex'),
      b.member.subarray(0, 12).toString('hex'),
    );
    for (const e of entries)
      assert.ok(e.score >= t0 - 0.01 && e.score <= t1 + 0.01, `score ${e.score}`);
    const pttl = await raw.pttl(`${prefix}chat`);
    assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`);
  });

  it('send to a `…!` channel: key prefix + non-local name, body carries __asgi_channel__ = full name', async () => {
    const ch = await py.newChannel();
    await node.send(ch, message);
    await py.send(ch, message);
    const key = prefix + ch.slice(0, ch.indexOf('!') + 1);
    const entries = await zset(key);
    assert.equal(entries.length, 2);
    assert.equal(body(entries[0]!), body(entries[1]!));
    assert.equal(
      body(entries[0]!),
      (await peer.pack(tag({ ...message, __asgi_channel__: ch }))).toString('hex'),
    );
  });

  it('group_add: key prefix + ":group:" + group, members = channel names, scores = add time, TTL = group expiry', async () => {
    const t0 = nowSeconds();
    await node.groupAdd('room', 'member.node');
    await py.groupAdd('room', 'member.python');
    const t1 = nowSeconds();
    const key = `${prefix}:group:room`;
    assert.equal(await raw.type(key), 'zset');
    const entries = await zset(key);
    assert.deepEqual(entries.map((e) => e.member.toString()).sort(), [
      'member.node',
      'member.python',
    ]);
    for (const e of entries)
      assert.ok(e.score >= t0 - 0.01 && e.score <= t1 + 0.01, `score ${e.score}`);
    const pttl = await raw.pttl(key);
    assert.ok(pttl > 590_000 && pttl <= 600_000, `PTTL ${pttl}`);
  });

  it('group_send: one member per channel key, __asgi_channel__ lists the key’s channels in group order', async () => {
    // A Python layer of its own: a fresh client prefix, so an empty `…!` key.
    const owner = await peer.core({ hosts: redis.urls, prefix });
    const a = await owner.newChannel();
    const b = await owner.newChannel();
    for (const ch of [a, 'grp.normal', b]) await py.groupAdd('team', ch);
    await owner.close();
    await node.groupSend('team', message);
    await py.groupSend('team', message);
    const localKey = prefix + a.slice(0, a.indexOf('!') + 1);
    const local = await zset(localKey);
    assert.equal(local.length, 2);
    assert.equal(body(local[0]!), body(local[1]!));
    assert.equal(
      body(local[0]!),
      (await peer.pack(tag({ ...message, __asgi_channel__: [a, b] }))).toString('hex'),
    );
    const normal = await zset(`${prefix}grp.normal`);
    assert.equal(normal.length, 2);
    assert.equal(body(normal[0]!), body(normal[1]!));
    assert.equal(
      body(normal[0]!),
      (await peer.pack(tag({ ...message, __asgi_channel__: ['grp.normal'] }))).toString('hex'),
    );
    const pttl = await raw.pttl(localKey);
    assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`);
  });

  it('a channels_redis reader’s leftover `$inflight` backup is put back and delivered by Node', async () => {
    const key = `${prefix}crashed`;
    const member = await py.serialize(tag({ type: 'left.in.flight' }));
    await raw.zadd(`${key}$inflight`, nowSeconds(), member);
    const reader = new RedisChannelLayer({ hosts: redis.urls, prefix });
    try {
      assert.deepEqual(await reader.receive('crashed', soon()), { type: 'left.in.flight' });
      assert.equal(await raw.exists(`${key}$inflight`), 0);
    } finally {
      await reader.close();
    }
  });
});

describe('core layer with Fernet: member = 12 random bytes + Fernet token', () => {
  const prefix = 'wiref:';
  const keys = ['wire secret'];
  let node: RedisChannelLayer;
  let py: PyLayer;

  before(async () => {
    node = new RedisChannelLayer({ hosts: redis.urls, prefix, symmetricEncryptionKeys: keys });
    py = await peer.core({ hosts: redis.urls, prefix, symmetric_encryption_keys: keys });
  });
  after(async () => {
    await node?.flush();
    await node?.close();
    await py?.close();
  });

  it('Node and Python members have the same layout, and channels_redis deserializes Node’s', async () => {
    await node.send('secret', { type: 'sealed', n: 1 });
    await py.send('secret', { type: 'sealed', n: 1 });
    const entries = await zset(`${prefix}secret`);
    assert.equal(entries.length, 2);
    for (const e of entries) {
      const token = e.member.subarray(12).toString('latin1');
      assert.match(token, /^gAAAAA[A-Za-z0-9_-]+={0,2}$/);
      assert.equal(token.length % 4, 0, 'padded base64');
      // Same plaintext length → same token length.
      assert.equal(e.member.length, entries[0]!.member.length);
      assert.deepEqual(await py.deserialize(e.member), tag({ type: 'sealed', n: 1 }));
    }
  });
});

describe('Pub/Sub layer: identical payloads on the wire', () => {
  const prefix = 'wireps.';
  let node: RedisPubSubChannelLayer;
  let py: PyLayer;
  let sub: Redis;
  const payloads = new Map<string, Buffer[]>();
  const waiters: Array<() => void> = [];

  before(async () => {
    node = new RedisPubSubChannelLayer({ hosts: redis.urls, prefix });
    py = await peer.pubsub({ hosts: redis.urls, prefix });
    sub = new Redis(redis.urls[0]!);
    sub.on('messageBuffer', (channel: Buffer, payload: Buffer) => {
      const list = payloads.get(channel.toString()) ?? [];
      list.push(payload);
      payloads.set(channel.toString(), list);
      waiters.splice(0).forEach((w) => w());
    });
  });
  after(async () => {
    sub?.disconnect();
    await node?.close();
    await py?.close();
  });

  /** Resolves once `channel` has received `count` payloads. */
  async function collected(channel: string, count: number): Promise<Buffer[]> {
    while ((payloads.get(channel)?.length ?? 0) < count) {
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
    return payloads.get(channel)!;
  }

  it('send: the Redis channel is the channel name; payload = bare msgpack, byte-identical', async () => {
    const ch = `${prefix}specific.0123456789abcdef0123456789abcdef`;
    await sub.subscribe(ch);
    const message = { type: 'ps', text: 'héllo', big: 2n ** 63n, b: new Uint8Array([1]) };
    await node.send(ch, message);
    await py.send(ch, message);
    const [a, b] = await collected(ch, 2);
    assert.equal(a!.toString('hex'), b!.toString('hex'));
    assert.equal(a!.toString('hex'), (await peer.pack(tag(message))).toString('hex'));
  });

  it('group_send: published on prefix + "__group__" + group, byte-identical', async () => {
    const ch = `${prefix}__group__lobby`;
    await sub.subscribe(ch);
    await node.groupSend('lobby', { type: 'grp', n: -1 });
    await py.groupSend('lobby', { type: 'grp', n: -1 });
    const [a, b] = await collected(ch, 2);
    assert.equal(a!.toString('hex'), b!.toString('hex'));
    assert.equal(
      a!.toString('hex'),
      (await peer.pack(tag({ type: 'grp', n: -1 }))).toString('hex'),
    );
  });
});
