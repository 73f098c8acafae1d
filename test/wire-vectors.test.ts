/**
 * Golden wire vectors (scripts/gen-wire-vectors.py → test/fixtures/wire-vectors.json, computed
 * by channels_redis 4.0.0 / msgpack 1.0 / cryptography) against chanlayer's own code: msgpack
 * bytes, crc32 placement, key names, complete stored members and Pub/Sub payloads, Fernet and
 * secretbox tokens. docs/wire-protocol.md quotes these vectors.
 *
 * The last test regenerates the fixture in memory with /usr/bin/python3 and compares, so the
 * committed file cannot drift from what the generator (and channels_redis) produce.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import nacl from 'tweetnacl';
import { RedisChannelLayer } from '../lib/index.ts';
import { nonLocalName } from '../lib/names.ts';
import { crc32Placement } from '../lib/redis/placement.ts';
import { Codec } from '../lib/serde/codec.ts';
import { Fernet } from '../lib/serde/fernet.ts';
import { decode, encode, msgpackSerializer } from '../lib/serde/msgpack.ts';
import { Secretbox } from '../lib/serde/secretbox.ts';
import { untag, type Tagged } from './interop/tagged.ts';

const FIXTURE_URL = new URL('./fixtures/wire-vectors.json', import.meta.url);

interface Gen {
  kind: 'str' | 'bytes' | 'list' | 'map';
  count: number;
  unit?: string;
}
interface MsgpackVector {
  name: string;
  value?: Tagged;
  gen?: Gen;
  hex?: string;
  length?: number;
  head?: string;
  sha256?: string;
  node_encodes: boolean;
}
interface Fixture {
  msgpack: MsgpackVector[];
  placement: { name: string; crc32: number; low12: number; index: Record<string, number> }[];
  keys: {
    channels: {
      prefix: string;
      channel: string;
      non_local_name: string;
      channel_key: string;
      inflight_key: string;
    }[];
    groups: { prefix: string; group: string; group_key: string }[];
    pubsub: { prefix: string; group: string; group_channel: string }[];
    new_channel: { layer: string; prefix: string; name: string; client_prefix?: string }[];
  };
  core: {
    op: string;
    channel?: string;
    channel_key?: string;
    message: Tagged;
    body: Tagged;
    member: string;
    random_prefix: string;
  }[];
  fernet: {
    secrets: string[];
    fernet_key: string;
    time: number;
    iv: string;
    message: Tagged;
    body: string;
    token: string;
    random_prefix: string;
    member: string;
  }[];
  pubsub: { message: Tagged; payload: string }[];
  secretbox: { secret: string; key: string; nonce: string; plaintext: string; token: string }[];
}

const fixture = JSON.parse(readFileSync(FIXTURE_URL, 'utf8')) as Fixture;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (h: string): Buffer => Buffer.from(h, 'hex');

/** The generator's recipes for large values (scripts/gen-wire-vectors.py `generate`). */
function generate(gen: Gen): unknown {
  switch (gen.kind) {
    case 'str':
      return gen.unit!.repeat(gen.count);
    case 'bytes':
      return Uint8Array.from({ length: gen.count }, (_, i) => i & 0xff);
    case 'list':
      return Array.from({ length: gen.count }, (_, i) => i & 0x7f);
    case 'map':
      return Object.fromEntries(Array.from({ length: gen.count }, (_, i) => [`k${i}`, i & 0x7f]));
  }
}

describe('wire vectors: msgpack bodies (msgpack.packb, use_bin_type=True)', () => {
  it('covers every msgpack family', () => {
    assert.ok(fixture.msgpack.length >= 60);
  });

  for (const v of fixture.msgpack) {
    const value = v.gen ? generate(v.gen) : untag(v.value!);
    if (v.node_encodes) {
      it(`${v.name}: chanlayer writes Python's bytes and reads them back`, () => {
        const bytes = encode(value);
        if (v.hex !== undefined) assert.equal(hex(bytes), v.hex);
        else {
          assert.equal(bytes.length, v.length);
          assert.equal(hex(bytes.subarray(0, 16)), v.head);
          assert.equal(createHash('sha256').update(bytes).digest('hex'), v.sha256);
        }
        assert.deepStrictEqual(decode(bytes), value);
      });
    } else {
      it(`${v.name}: chanlayer reads Python's bytes (JS has no distinct value to write back)`, () => {
        assert.deepStrictEqual(decode(fromHex(v.hex!)), value);
        assert.notEqual(hex(encode(value)), v.hex);
      });
    }
  }
});

describe('wire vectors: shard placement (crc32)', () => {
  for (const p of fixture.placement) {
    it(`${p.name.length > 40 ? p.name.slice(0, 40) + '…' : p.name}: crc32 and index for n = 1..5`, () => {
      assert.equal(crc32(p.name) >>> 0, p.crc32);
      assert.equal(p.crc32 & 0xfff, p.low12);
      for (const [n, index] of Object.entries(p.index)) {
        assert.equal(crc32Placement(Number(n)).index(p.name), index, `n=${n}`);
      }
    });
  }

  it('RedisChannelLayer.shardOf places a `…!` channel by its non-local name (the #221 fix)', async () => {
    for (let n = 1; n <= 5; n++) {
      const layer = new RedisChannelLayer({
        hosts: Array.from({ length: n }, (_, i) => `redis://127.0.0.1:${1 + i}`),
      });
      try {
        for (const p of fixture.placement) {
          const own = fixture.placement.find((q) => q.name === nonLocalName(p.name));
          if (!own) continue;
          assert.equal(layer.shardOf(p.name), own.index[String(n)], `${p.name} n=${n}`);
        }
        assert.equal(layer.shardOf('chat', { group: true }), crc32Placement(n).index('chat'));
      } finally {
        await layer.close();
      }
    }
  });
});

describe('wire vectors: names', () => {
  it('channel keys: prefix + non-local name; backup: key + "$inflight"', () => {
    for (const c of fixture.keys.channels) {
      assert.equal(nonLocalName(c.channel), c.non_local_name);
      assert.equal(c.prefix + nonLocalName(c.channel), c.channel_key);
      assert.equal(`${c.channel_key}$inflight`, c.inflight_key);
    }
  });

  it('group keys: prefix + ":group:" + group; Pub/Sub group channel: prefix + "__group__" + group', () => {
    for (const g of fixture.keys.groups) assert.equal(`${g.prefix}:group:${g.group}`, g.group_key);
    for (const g of fixture.keys.pubsub)
      assert.equal(`${g.prefix}__group__${g.group}`, g.group_channel);
  });

  it('core newChannel() has the shape of channels_redis new_channel()', async () => {
    const py = fixture.keys.new_channel.find((x) => x.layer === 'core')!;
    assert.equal(py.name, `${py.prefix}.${py.client_prefix}!${py.name.split('!')[1]}`);
    const layer = new RedisChannelLayer({ hosts: ['redis://127.0.0.1:1'] });
    try {
      const name = await layer.newChannel();
      assert.match(name, /^specific\.[0-9a-f]{32}![0-9a-f]{32}$/);
      assert.equal(name.split('.')[1]!.split('!')[0], layer.clientPrefix);
      assert.equal(name.length, py.name.length);
    } finally {
      await layer.close();
    }
  });
});

describe('wire vectors: complete core ZSET members (12 random bytes + msgpack body)', () => {
  const codec = new Codec({
    serializer: msgpackSerializer,
    prefixLength: 12,
    maxMessageBytes: 1 << 22,
  });
  for (const c of fixture.core) {
    it(`${c.op} ${c.channel ?? c.channel_key}: chanlayer reads the member, writes the same body`, () => {
      const member = fromHex(c.member);
      assert.equal(hex(member.subarray(0, 12)), c.random_prefix);
      assert.deepStrictEqual(codec.decode(member), untag(c.body));
      const written = codec.encode(untag(c.body) as Record<string, unknown>);
      assert.equal(written.length, member.length);
      assert.equal(hex(written.subarray(12)), hex(member.subarray(12)));
    });
  }

  it('group_send entries name every channel of their key in a list', () => {
    const lists = fixture.core
      .filter((c) => c.op === 'group_send')
      .map((c) => (untag(c.body) as { __asgi_channel__: unknown }).__asgi_channel__);
    assert.ok(lists.every(Array.isArray));
    assert.ok(lists.some((l) => (l as string[]).length === 2));
  });
});

describe('wire vectors: Fernet members (12 random bytes + Fernet token of the msgpack body)', () => {
  for (const f of fixture.fernet) {
    it(`keys ${JSON.stringify(f.secrets)}: same token from the same time and IV; member decodes`, () => {
      const body = encode(untag(f.message));
      assert.equal(hex(body), f.body);
      const key = createHash('sha256').update(f.secrets[0]!, 'utf8').digest();
      assert.equal(key.toString('base64url') + '=', f.fernet_key);
      const fernet = new Fernet(f.secrets);
      const token = fernet.encryptAt(body, f.time, fromHex(f.iv));
      assert.equal(token.toString('latin1'), f.token);
      assert.equal(hex(Buffer.concat([fromHex(f.random_prefix), token])), f.member);
      // Decoding a member through the codec: the reader's whole path (no TTL: the vector is old).
      const codec = new Codec({
        serializer: msgpackSerializer,
        crypter: new Fernet([...f.secrets].reverse()),
        prefixLength: 12,
        maxMessageBytes: 1 << 22,
      });
      assert.deepStrictEqual(codec.decode(fromHex(f.member)), untag(f.message));
    });
  }
});

describe('wire vectors: Pub/Sub payloads (bare msgpack, no random prefix)', () => {
  const codec = new Codec({
    serializer: msgpackSerializer,
    prefixLength: 0,
    maxMessageBytes: 1 << 22,
  });
  for (const [i, p] of fixture.pubsub.entries()) {
    it(`payload ${i}: chanlayer publishes the same bytes and reads them`, () => {
      const message = untag(p.message) as Record<string, unknown>;
      assert.equal(hex(codec.encode(message)), p.payload);
      assert.deepStrictEqual(codec.decode(fromHex(p.payload)), message);
    });
  }
});

describe('wire vectors: secretbox tokens (independent pure-Python XSalsa20-Poly1305)', () => {
  for (const [i, s] of fixture.secretbox.entries()) {
    it(`token ${i}: 0x01 | nonce | nacl.secretbox — chanlayer writes and reads it`, () => {
      assert.equal(hex(createHash('sha256').update(s.secret, 'utf8').digest()), s.key);
      const box = new Secretbox([s.secret]);
      const token = box.encryptWithNonce(fromHex(s.plaintext), fromHex(s.nonce));
      assert.equal(hex(token), s.token);
      assert.equal(hex(box.decrypt(fromHex(s.token))), s.plaintext);
      // tweetnacl's high-level API agrees with the Python implementation too.
      const sealed = nacl.secretbox(fromHex(s.plaintext), fromHex(s.nonce), fromHex(s.key));
      assert.equal(hex(sealed), s.token.slice(2 + 48));
    });
  }
});

describe('wire vectors: the fixture is current', () => {
  it('scripts/gen-wire-vectors.py regenerates exactly the committed file', () => {
    const script = new URL('../scripts/gen-wire-vectors.py', import.meta.url).pathname;
    const live = execFileSync('/usr/bin/python3', [script, '--stdout'], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    assert.equal(live, readFileSync(FIXTURE_URL, 'utf8'));
  });
});
