/**
 * The Python peer itself (test/interop/peer.py) against real redis-servers, and the
 * channels_redis 4.0.0 behaviours the interop tests rely on — checked on Python alone so that
 * a failure in test/interop-*.test.ts points at chanlayer, not at the harness.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PeerError, redisAndPeer } from './interop/peer.ts';
import {
  bytes,
  float,
  int,
  list,
  map,
  nil,
  sameTagged,
  show,
  str,
  tag,
  untag,
} from './interop/tagged.ts';
import { Redis } from 'ioredis';

const env = redisAndPeer(3);

describe('python peer', () => {
  it('runs Debian channels_redis 4.0.0 with msgpack 1.0', async () => {
    const v = await env.peer.versions();
    assert.equal(v.channels_redis, '4.0.0');
    assert.match(String(v.msgpack), /^1\.0\./);
  });

  it('round-trips the tagged form exactly (Python → JSON → Python)', async () => {
    const value = map({
      type: str('t'),
      big: int('18446744073709551615'),
      neg: int('-9223372036854775808'),
      f: float('-0.0'),
      inf: float('-inf'),
      nan: float('nan'),
      b: bytes('00ff'),
      l: list(nil, str('☃😀')),
    });
    const back = await env.peer.unpack(await env.peer.pack(value));
    assert.ok(sameTagged(back, value), show(back));
  });

  it('tag/untag agree on the JS side', () => {
    const js = { a: 2n ** 64n - 1n, b: 1, c: 0.5, d: new Uint8Array([1]), e: [null, 'x'] };
    assert.deepEqual(untag(tag(js)), js);
  });

  it('a request that fails comes back as PeerError with the Python exception name', async () => {
    const py = await env.peer.core({ hosts: [env.redis.urls[0]!], prefix: 'peer-err' });
    await assert.rejects(py.receive('nothing.here', 0.2), (err: PeerError) => {
      assert.equal(err.type, 'Timeout');
      return true;
    });
    await py.close();
  });

  it('Python → Python through one redis (core)', async () => {
    const py = await env.peer.core({ hosts: [env.redis.urls[0]!], prefix: 'peer-core' });
    const ch = await py.newChannel();
    assert.match(ch, new RegExp(`^specific\\.${py.clientPrefix}![0-9a-f]{32}$`));
    const got = py.receive(ch);
    await py.send(ch, { type: 'x', n: 1 });
    assert.deepEqual(await got, { type: 'x', n: 1 });
    await py.close();
  });

  it('Python → Python through two redis (pubsub), subscriptions confirmed before send', async () => {
    const a = await env.peer.pubsub({ hosts: env.redis.urls.slice(0, 2), prefix: 'peer-ps.' });
    const b = await env.peer.pubsub({ hosts: env.redis.urls.slice(0, 2), prefix: 'peer-ps.' });
    const ch = await a.newChannel();
    assert.match(ch, /^peer-ps\.specific\.[0-9a-f]{32}$/);
    await b.send(ch, { type: 'ps' });
    assert.deepEqual(await a.receive(ch), { type: 'ps' });
    await a.groupAdd('g', ch);
    await b.groupSend('g', { type: 'grp' });
    assert.deepEqual(await a.receive(ch), { type: 'grp' });
    await a.close();
    await b.close();
  });
});

describe('channels_redis 4.0.0 placement the interop tests depend on', () => {
  it('consistent_hash is floor((crc32 & 0xFFF) / (4096 / n)), 0 for n = 1', async () => {
    for (const name of ['asgi', 'specific.abc!', 'specific.abc!def', 'chat', 'x']) {
      const crc = await env.peer.crc32(name);
      for (let n = 1; n <= 5; n++) {
        const expect = n === 1 ? 0 : Math.floor((crc & 0xfff) / (4096 / n));
        assert.equal(await env.peer.hash(name, n), expect, `${name} n=${n}`);
      }
    }
  });

  it('#221: a send to `x!y` on 3 hosts lands on the shard of the FULL name, under the non-local key', async () => {
    const py = await env.peer.core({ hosts: env.redis.urls, prefix: 'peer221.' });
    // A channel whose full-name shard differs from its non-local-name shard.
    let channel = '';
    for (let i = 0; ; i++) {
      channel = `specific.abc!${i}`;
      if ((await env.peer.hash(channel, 3)) !== (await env.peer.hash('specific.abc!', 3))) break;
    }
    const full = await env.peer.hash(channel, 3);
    await py.send(channel, { type: 'misplaced' });
    const clients = env.redis.urls.map((u) => new Redis(u, { lazyConnect: true }));
    try {
      const counts = await Promise.all(clients.map((c) => c.zcard('peer221.specific.abc!')));
      assert.deepEqual(
        counts,
        [0, 1, 2].map((i) => (i === full ? 1 : 0)),
      );
    } finally {
      clients.forEach((c) => c.disconnect());
    }
    await py.flush();
    await py.close();
  });
});
