/**
 * Serializers: msgpack byte-for-byte against Python's msgpack (the channels_redis peer, live on
 * /usr/bin/python3 and through committed fixtures), every type edge round-tripping exactly, the
 * int/bigint/bytes rules of docs/wire-protocol.md, JSON, the registry, message validation
 * naming the path, size limits, framing and unreadable payloads.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { ConfigurationError, MessageTooLarge, UnreadablePayload } from '../lib/errors.ts';
import { InMemoryChannelLayer } from '../lib/layers/in-memory.ts';
import { CHANNEL_FIELD, Codec, assertMessage } from '../lib/serde/codec.ts';
import { jsonSerializer } from '../lib/serde/json.ts';
import { decode, encode, msgpackSerializer } from '../lib/serde/msgpack.ts';
import { getSerializer, registerSerializer } from '../lib/serde/registry.ts';
import type { Serializer } from '../lib/serde/types.ts';
import type { Message } from '../lib/types.ts';

const PYTHON = '/usr/bin/python3';
const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

const hex = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const u8 = (...bytes: number[]): Uint8Array => new Uint8Array(bytes);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const roundTrip = (v: unknown): unknown => decode(encode(v));

/**
 * Evaluates each Python expression (with `float`, `bytes`, `range`, `list` in scope) on the real
 * peer and returns `msgpack.packb(value, use_bin_type=True)` for each, as hex.
 */
function pythonPack(literals: string[]): string[] {
  const script = `
import json, sys, msgpack
env = {"__builtins__": {"float": float, "bytes": bytes, "range": range, "list": list}}
out = [msgpack.packb(eval(src, env), use_bin_type=True).hex() for src in json.load(sys.stdin)]
json.dump(out, sys.stdout)`;
  const stdout = execFileSync(PYTHON, ['-c', script], {
    input: JSON.stringify(literals),
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(stdout.toString()) as string[];
}

/**
 * What the Python peer reads from each payload (`msgpack.unpackb(b, raw=False)`): a tagged
 * description (`{int: "…"}`, `{float: "<ieee hex>"}`, `{bytes: hex}`, `{str}`, lists, maps as
 * key/value pairs) and the bytes Python writes when it packs that value again.
 */
interface PythonView {
  view: unknown;
  repacked: string;
}
function pythonRead(payloads: Uint8Array[]): PythonView[] {
  const script = `
import json, struct, sys, msgpack
def tag(v):
    if v is None: return None
    if isinstance(v, bool): return v
    if isinstance(v, int): return {"int": str(v)}
    if isinstance(v, float): return {"float": struct.pack(">d", v).hex()}
    if isinstance(v, bytes): return {"bytes": v.hex()}
    if isinstance(v, str): return {"str": v}
    if isinstance(v, list): return [tag(x) for x in v]
    if isinstance(v, dict): return {"map": [[tag(k), tag(x)] for k, x in v.items()]}
    raise TypeError(type(v))
out = []
for h in json.load(sys.stdin):
    v = msgpack.unpackb(bytes.fromhex(h), raw=False)
    out.append({"view": tag(v), "repacked": msgpack.packb(v, use_bin_type=True).hex()})
json.dump(out, sys.stdout)`;
  const stdout = execFileSync(PYTHON, ['-c', script], {
    input: JSON.stringify(payloads.map(hex)),
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(stdout.toString()) as PythonView[];
}

/**
 * What the rules of docs/wire-protocol.md §8 say a value comes back as: integers beyond ±2^53
 * as bigint, the others as number; any Uint8Array (Buffer too) as a plain Uint8Array;
 * undefined as null.
 */
const exact = (n: number): boolean => Math.abs(n) <= 2 ** 53;
function asDecoded(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'bigint') return exact(Number(v)) && BigInt(Number(v)) === v ? Number(v) : v;
  if (typeof v === 'number') return isMsgpackInt(v) && !exact(v) ? BigInt(v) : v;
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(asDecoded);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, asDecoded(x)]));
  }
  return v;
}

/** An integral number inside the int64/uint64 range travels as a msgpack int. */
function isMsgpackInt(n: number): boolean {
  return Number.isInteger(n) && !Object.is(n, -0) && n >= -(2 ** 63) && n < 2 ** 64;
}

/** The tagged description the wire-protocol rules predict Python will see for a JS value. */
function expectedView(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return { int: v.toString() };
  if (typeof v === 'number') {
    if (isMsgpackInt(v)) return { int: BigInt(v).toString() };
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return { float: b.toString('hex') };
  }
  if (typeof v === 'string') return { str: v };
  if (v instanceof Uint8Array) return { bytes: hex(v) };
  if (Array.isArray(v)) return v.map(expectedView);
  if (typeof v === 'object') {
    return {
      map: Object.keys(v).map((k) => [{ str: k }, expectedView((v as Record<string, unknown>)[k])]),
    };
  }
  throw new Error(`no view for ${typeof v}`);
}

// ---------------------------------------------------------------------------------------------
// JS values for the Python fixture cases (scripts/gen-msgpack-fixtures.py has the same names).
// `js` is what Node encodes; `decoded` (default: `js`) is what Node must decode Python's bytes to.
// ---------------------------------------------------------------------------------------------
const protoMessage = (): Record<string, unknown> =>
  JSON.parse('{"type":"t","__proto__":{"polluted":true}}');
const FIXTURE_VALUES: Record<string, { js: unknown; decoded?: unknown }> = {
  'small-message': { js: { type: 'chat.message', text: 'hello' } },
  'ints-positive-edges': {
    js: {
      type: 't',
      v: [
        0,
        1,
        127,
        128,
        255,
        256,
        65535,
        65536,
        2 ** 31 - 1,
        2 ** 31,
        2 ** 32 - 1,
        2 ** 32,
        2 ** 40,
        2 ** 53 - 1,
        2n ** 53n,
        2n ** 53n + 1n,
        2n ** 63n - 1n,
        2n ** 63n,
        2n ** 64n - 1n,
      ],
    },
  },
  'ints-negative-edges': {
    js: {
      type: 't',
      v: [
        -1,
        -32,
        -33,
        -128,
        -129,
        -32768,
        -32769,
        -(2 ** 31),
        -(2 ** 31) - 1,
        -(2 ** 40),
        -(2 ** 53 - 1),
        -(2n ** 53n),
        -(2n ** 53n) - 1n,
        -(2n ** 63n),
      ],
    },
  },
  'uint64-max': { js: { type: 't', n: U64_MAX } },
  'int64-min': { js: { type: 't', n: I64_MIN } },
  floats: { js: { type: 't', v: [0.5, -0.5, 1.5, Math.PI, 1e-300, 1e300, -2.5e-7] } },
  infinities: { js: { type: 't', pos: Infinity, neg: -Infinity } },
  nan: { js: { type: 't', nan: NaN } },
  'float-integral': { js: undefined, decoded: { type: 't', one: 1, big: 1e20, negzero: -0 } },
  bytes: {
    js: {
      type: 't',
      empty: Buffer.alloc(0),
      b: Buffer.from([0, 1, 0xfe, 0xff]),
      bin8max: new Uint8Array(range(255)),
    },
    decoded: {
      type: 't',
      empty: u8(),
      b: u8(0, 1, 0xfe, 0xff),
      bin8max: new Uint8Array(range(255)),
    },
  },
  'bytes-256': { js: { type: 't', bin16: new Uint8Array(range(256)) } },
  strings: {
    js: {
      type: 't',
      empty: '',
      s31: 'x'.repeat(31),
      s32: 'y'.repeat(32),
      s255: 'z'.repeat(255),
      s256: 'w'.repeat(256),
      unicode: 'héllo wörld ✓ 日本語 😀',
      nul: 'a\u0000b',
    },
  },
  nested: {
    js: {
      type: 't',
      list: [1, [2, [3, [4, []]]], { a: { b: { c: null } } }],
      map: { k: [true, false, null], e: {} },
    },
  },
  'empty-containers': { js: { type: 't', l: [], m: {}, n: null } },
  'booleans-null': { js: { type: 't', t: true, f: false, n: null } },
  'array16-map16': {
    js: {
      type: 't',
      a15: range(15),
      a16: range(16),
      m15: Object.fromEntries(range(15).map((i) => [`k${String(i).padStart(2, '0')}`, i])),
      m16: Object.fromEntries(range(16).map((i) => [`k${String(i).padStart(2, '0')}`, i])),
    },
  },
  'unicode-keys': { js: { type: 't', clé: 1, 日本: [2], '': 3 } },
  'proto-key': { js: protoMessage() },
  'asgi-style': {
    js: {
      type: 'websocket.send',
      text: null,
      bytes: Buffer.from('\x89PNG', 'latin1'),
      headers: [[Buffer.from('host'), Buffer.from('example.com')]],
      status: 200,
      more_body: false,
    },
    decoded: {
      type: 'websocket.send',
      text: null,
      bytes: u8(0x89, 0x50, 0x4e, 0x47),
      headers: [[new Uint8Array(Buffer.from('host')), new Uint8Array(Buffer.from('example.com'))]],
      status: 200,
      more_body: false,
    },
  },
};

interface FixtureCase {
  name: string;
  python: string;
  jsEncodes: boolean;
  hex: string;
}
const fixtures = JSON.parse(
  readFileSync(new URL('./fixtures/msgpack-python.json', import.meta.url), 'utf8'),
) as { cases: FixtureCase[] };

describe('msgpack matches Python fixtures (scripts/gen-msgpack-fixtures.py)', () => {
  it('every fixture case has a JS value here and vice versa', () => {
    assert.deepEqual(fixtures.cases.map((c) => c.name).sort(), Object.keys(FIXTURE_VALUES).sort());
  });

  for (const c of fixtures.cases) {
    const entry = FIXTURE_VALUES[c.name]!;
    if (c.jsEncodes) {
      it(`${c.name}: Node encodes the bytes Python packs`, () => {
        assert.equal(hex(encode(entry.js)), c.hex);
      });
    }
    it(`${c.name}: Node decodes Python's bytes to the right JS values`, () => {
      assert.deepStrictEqual(
        decode(Buffer.from(c.hex, 'hex')),
        'decoded' in entry ? entry.decoded : asDecoded(entry.js),
      );
    });
  }
});

describe('msgpack against the live Python peer (/usr/bin/python3, msgpack 1.0)', () => {
  it('the committed fixtures are what Python packs today', () => {
    const live = pythonPack(fixtures.cases.map((c) => c.python));
    assert.deepEqual(
      live,
      fixtures.cases.map((c) => c.hex),
    );
  });

  // Python expression ⇄ the JS value that must encode to the same bytes.
  const LIVE_CASES: Array<[string, unknown]> = [
    [
      "{'type': 'chat.message', 'text': 'hi', 'n': 3, 'ok': True}",
      { type: 'chat.message', text: 'hi', n: 3, ok: true },
    ],
    ["{'type': 't', 'n': 2**64 - 1}", { type: 't', n: U64_MAX }],
    ["{'type': 't', 'n': -2**63}", { type: 't', n: I64_MIN }],
    ["{'type': 't', 'n': 2**53}", { type: 't', n: 2 ** 53 }], // an exact number, not a bigint
    ["{'type': 't', 'n': 2**63}", { type: 't', n: 2 ** 63 }],
    ["{'type': 't', 'n': -2**63}", { type: 't', n: -(2 ** 63) }],
    ["{'type': 't', 'n': 5}", { type: 't', n: 5n }], // a small bigint packs like a small int
    ["{'type': 't', 'n': -2**31 - 1}", { type: 't', n: -(2n ** 31n) - 1n }],
    ["{'type': 't', 'n': 2**40}", { type: 't', n: 2n ** 40n }],
    ["{'type': 't', 'f': 2.0**64}", { type: 't', f: 2 ** 64 }], // too big for uint64: a float
    ["{'type': 't', 'f': -2.0**64}", { type: 't', f: -(2 ** 64) }],
    ["{'type': 't', 'f': 0.1 + 0.2}", { type: 't', f: 0.1 + 0.2 }],
    [
      "{'type': 't', 'f': 5e-324, 'g': 1.7976931348623157e308}",
      { type: 't', f: Number.MIN_VALUE, g: Number.MAX_VALUE },
    ],
    ["{'type': 't', 's': 'x' * 70000}", { type: 't', s: 'x'.repeat(70000) }],
    ["{'type': 't', 's': 'é' * 35000}", { type: 't', s: 'é'.repeat(35000) }],
    [
      "{'type': 't', 's': 'x' * 65535, 't': 'y' * 65536}",
      { type: 't', s: 'x'.repeat(65535), t: 'y'.repeat(65536) },
    ],
    [
      "{'type': 't', 's': '日' * 10, 't': '日' * 11, 'u': '😀' * 8}",
      { type: 't', s: '日'.repeat(10), t: '日'.repeat(11), u: '😀'.repeat(8) },
    ],
    [
      "{'type': 't', 'b': bytes(range(256)) * 300}",
      { type: 't', b: Buffer.alloc(76800).map((_, i) => i & 0xff) },
    ],
    [
      "{'type': 't', 'b': b'\\x00' * 65535, 'c': b'\\x01' * 65536}",
      { type: 't', b: Buffer.alloc(65535), c: new Uint8Array(65536).fill(1) },
    ],
    ["{'type': 't', 'a': list(range(70000))}", { type: 't', a: range(70000) }],
    ["{'type': 't', 'a': [None] * 65535}", { type: 't', a: new Array(65535).fill(null) }],
    [
      "{'type': 't', 'deep': [[[[[[[[[[{'k': [[[[[{}]]]]]}]]]]]]]]]]}",
      { type: 't', deep: [[[[[[[[[[{ k: [[[[[{}]]]]] }]]]]]]]]]] },
    ],
  ];

  it('Node encodes exactly what Python packs for the same value', () => {
    const live = pythonPack(LIVE_CASES.map(([py]) => py));
    LIVE_CASES.forEach(([py, js], i) => {
      const mine = hex(encode(js));
      assert.ok(
        mine === live[i],
        `bytes differ for ${py.slice(0, 80)}: node ${mine.slice(0, 80)} python ${live[i]!.slice(0, 80)}`,
      );
    });
  });

  it('Node decodes what Python packs for the same value', () => {
    const live = pythonPack(LIVE_CASES.map(([py]) => py));
    LIVE_CASES.forEach(([py, js], i) => {
      assert.deepStrictEqual(decode(Buffer.from(live[i]!, 'hex')), asDecoded(js), py);
    });
  });

  it('Python reads Node-packed messages as the same values and re-packs them to the same bytes', () => {
    const messages: Record<string, unknown>[] = [
      ...Object.values(FIXTURE_VALUES)
        .map((e) => e.js)
        .filter(
          (js): js is Record<string, unknown> =>
            js !== undefined && !Object.hasOwn(js as object, '__proto__'),
        ),
      ...LIVE_CASES.map(([, js]) => js as Record<string, unknown>),
      randomMessage(1),
      randomMessage(2),
      randomMessage(3),
    ];
    const payloads = messages.map((m) => encode(m));
    const views = pythonRead(payloads);
    views.forEach((got, i) => {
      assert.equal(got.repacked, hex(payloads[i]!), `message ${i} re-packs differently in Python`);
      assert.deepStrictEqual(
        got.view,
        expectedView(messages[i]),
        `message ${i} reads differently in Python`,
      );
    });
  });

  it('Python-packed edge values decode in Node to the right JS types', () => {
    const cases: Array<[string, unknown]> = [
      ['18446744073709551615', U64_MAX],
      ['-9223372036854775808', I64_MIN],
      ['2**53 - 1', Number.MAX_SAFE_INTEGER],
      ['-(2**53 - 1)', Number.MIN_SAFE_INTEGER],
      ['2**53 + 1', 2n ** 53n + 1n],
      ['-2**53 - 1', -(2n ** 53n) - 1n],
      ['2**40', 2 ** 40],
      ['2**32', 2 ** 32],
      ['-2**31 - 1', -(2 ** 31) - 1],
      ['1.0', 1],
      ['-0.5', -0.5],
      ["float('inf')", Infinity],
      ["float('-inf')", -Infinity],
      ["float('nan')", NaN],
      ["b'\\x00\\xff'", u8(0, 0xff)],
      ["b''", u8()],
      ["'ünï'", 'ünï'],
      ['[1, [2.5, None], {}]', [1, [2.5, null], {}]],
      ["{1: 'int key', 'k': {'n': [b'x']}}", { '1': 'int key', k: { n: [u8(0x78)] } }],
      ['True', true],
      ['None', null],
    ];
    const live = pythonPack(cases.map(([py]) => py));
    cases.forEach(([py, want], i) => {
      const got = decode(Buffer.from(live[i]!, 'hex'));
      assert.deepStrictEqual(got, want, py);
      if (
        typeof want === 'object' &&
        want !== null &&
        !Array.isArray(want) &&
        !(want instanceof Uint8Array)
      ) {
        assert.equal(Object.getPrototypeOf(got), Object.prototype, 'maps decode to plain objects');
      }
    });
  });
});

/** A deterministic pseudo-random message of every msgpack type (seeded, reproducible). */
function randomMessage(seed: number): Record<string, unknown> {
  let s = Math.imul(seed, 2654435761) & 0x7fffffff;
  const rnd = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const leaf = (): unknown =>
    pick<() => unknown>([
      () => Math.floor(rnd() * 2 ** 32) - 2 ** 31,
      () => Math.floor(rnd() * 2 ** 53),
      () => -Math.floor(rnd() * 2 ** 53),
      () => BigInt(Math.floor(rnd() * 2 ** 32)) * BigInt(Math.floor(rnd() * 2 ** 32)),
      () => -BigInt(Math.floor(rnd() * 2 ** 31)) * BigInt(Math.floor(rnd() * 2 ** 32)),
      () => (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40),
      () => pick([Infinity, -Infinity, NaN, 0.5, -0.5]),
      () => 'ab✓😀é'.repeat(Math.floor(rnd() * 30)),
      () => new Uint8Array(Math.floor(rnd() * 300)).map(() => Math.floor(rnd() * 256)),
      () => pick([true, false, null]),
    ])();
  const node = (depth: number): unknown => {
    if (depth > 4 || rnd() < 0.4) return leaf();
    const n = Math.floor(rnd() * 20);
    if (rnd() < 0.5) return Array.from({ length: n }, () => node(depth + 1));
    return Object.fromEntries(
      Array.from({ length: n }, (_, i) => [`k${i}_${Math.floor(rnd() * 1e6)}`, node(depth + 1)]),
    );
  };
  return { type: 'random', body: node(0), list: Array.from({ length: 20 }, leaf) };
}

describe('msgpack round trip of every type edge', () => {
  const edges: Array<[string, unknown, unknown?]> = [
    ['null', null],
    ['true', true],
    ['false', false],
    ['0', 0],
    ['positive fixint max', 127],
    ['uint8', 255],
    ['uint16', 65535],
    ['uint32 2^31', 2 ** 31],
    ['uint32 max', 2 ** 32 - 1],
    ['2^32', 2 ** 32],
    ['2^40', 2 ** 40],
    ['-2^40', -(2 ** 40)],
    ['2^53 - 1 (number)', Number.MAX_SAFE_INTEGER],
    ['-(2^53 - 1) (number)', Number.MIN_SAFE_INTEGER],
    ['2^53 + 1 (bigint)', 2n ** 53n + 1n],
    ['-(2^53 + 1) (bigint)', -(2n ** 53n) - 1n],
    ['int32 min', -(2 ** 31)],
    ['-2^31 - 1', -(2 ** 31) - 1],
    ['negative fixint min', -32],
    ['int8 min', -128],
    ['int16 min', -32768],
    ['uint64 max', U64_MAX],
    ['int64 max', 2n ** 63n - 1n],
    ['2^63', 2n ** 63n],
    ['int64 min', I64_MIN],
    ['0.5', 0.5],
    ['-0.5', -0.5],
    ['+Infinity', Infinity],
    ['-Infinity', -Infinity],
    ['NaN', NaN],
    ['Number.MIN_VALUE', Number.MIN_VALUE],
    ['Number.MAX_VALUE', Number.MAX_VALUE],
    ['1e21', 1e21], // an integral float beyond uint64 stays a float
    ['empty string', ''],
    ['unicode', 'héllo ✓ 日本語 😀 \u0000 \u{10ffff}'],
    ['long string (70k)', 's'.repeat(70_000)],
    ['long unicode string', '✓'.repeat(30_000)],
    ['empty list', []],
    ['empty map', {}],
    ['nested lists', [[[[]], [1, [2, [3]]]]]],
    ['nested maps', { a: { b: { c: { d: {} } } } }],
    ['list of maps of lists', [{ a: [1, { b: [null, true] }] }, {}]],
    ['Uint8Array', u8(1, 2, 3)],
    ['empty Uint8Array', u8()],
    ['Buffer becomes Uint8Array', Buffer.from([9, 8, 7]), u8(9, 8, 7)],
    [
      'Uint8Array view into a larger buffer',
      new Uint8Array(new Uint8Array([0, 1, 2, 3, 4]).buffer, 1, 3),
      u8(1, 2, 3),
    ],
    ['70k bytes', new Uint8Array(70_000).fill(7)],
    ['small bigint becomes number', 42n, 42],
    ['negative small bigint becomes number', -42n, -42],
    ['undefined becomes nil', undefined, null],
    ['map with undefined', { a: undefined }, { a: null }],
  ];

  for (const edge of edges) {
    const [label, value] = edge;
    const expected = edge.length > 2 ? edge[2] : value;
    it(label, () => {
      assert.deepStrictEqual(roundTrip(value), expected);
      assert.deepStrictEqual(roundTrip({ type: 'edge', value }), { type: 'edge', value: expected });
    });
  }

  it('a message holding every edge at once round-trips', () => {
    const message = {
      type: 'all',
      ...Object.fromEntries(edges.map(([label, value]) => [label, value])),
    };
    const expected = {
      type: 'all',
      ...Object.fromEntries(edges.map((e) => [e[0], e.length > 2 ? e[2] : e[1]])),
    };
    assert.deepStrictEqual(roundTrip(message), expected);
  });

  it('decoded bytes are plain Uint8Array (not Buffer) and do not alias the payload', () => {
    const payload = encode({ type: 't', b: Buffer.from([1, 2, 3]) });
    const got = decode(payload) as { b: Uint8Array };
    assert.equal(Object.getPrototypeOf(got.b), Uint8Array.prototype);
    payload.fill(0);
    assert.deepStrictEqual(got.b, u8(1, 2, 3));
  });

  it('±2^53 is where number stops and bigint starts', () => {
    assert.equal(typeof roundTrip(2 ** 53 - 1), 'number');
    assert.equal(typeof roundTrip(-(2 ** 53 - 1)), 'number');
    assert.equal(typeof roundTrip(2n ** 53n + 1n), 'bigint');
    assert.equal(typeof roundTrip(-(2n ** 53n) - 1n), 'bigint');
    // 2^53 itself is not a safe integer: whichever type it decodes to, its value is exact.
    assert.equal(BigInt(roundTrip(2 ** 53) as number | bigint), 2n ** 53n);
    assert.equal(BigInt(roundTrip(-(2 ** 53)) as number | bigint), -(2n ** 53n));
  });

  it('integers are msgpack ints across the int64/uint64 range, never floats', () => {
    const ints: Array<number | bigint> = [
      2 ** 32,
      2 ** 40,
      2 ** 52 + 1,
      2 ** 53 - 1,
      2 ** 53,
      2 ** 60,
      2 ** 63,
      2 ** 64 - 2048,
      -(2 ** 32),
      -(2 ** 53),
      -(2 ** 63),
      U64_MAX,
      I64_MIN,
    ];
    for (const n of ints) {
      const b = encode(n);
      assert.ok(
        b[0] === 0xcf || b[0] === 0xd3,
        `${n} encoded with type byte 0x${b[0]!.toString(16)}`,
      );
      assert.equal(BigInt(decode(b) as number | bigint), BigInt(n));
    }
    for (const f of [0.5, 2 ** 64, -(2 ** 64), 1e300, Infinity, NaN]) {
      assert.equal(encode(f)[0], 0xcb, `${f} is a float64`);
    }
  });

  it('decodes float32 (0xca) too', () => {
    assert.equal(decode(Buffer.from('ca3fc00000', 'hex')), 1.5);
  });

  it('str/bin/array/map headers switch at the msgpack boundaries', () => {
    const head = (v: unknown): number => encode(v)[0]!;
    assert.equal(head('x'.repeat(31)) & 0xe0, 0xa0);
    assert.equal(head('日'.repeat(10)) & 0xe0, 0xa0); // 30 bytes
    assert.equal(head('日'.repeat(11)), 0xd9); // 33 bytes
    assert.equal(head('x'.repeat(32)), 0xd9);
    assert.equal(head('x'.repeat(256)), 0xda);
    assert.equal(head('x'.repeat(65536)), 0xdb);
    assert.equal(head(new Uint8Array(255)), 0xc4);
    assert.equal(head(new Uint8Array(256)), 0xc5);
    assert.equal(head(new Uint8Array(65536)), 0xc6);
    assert.equal(head(range(15)) & 0xf0, 0x90);
    assert.equal(head(range(16)), 0xdc);
    assert.equal(head(range(65536)), 0xdd);
    assert.equal(head(Object.fromEntries(range(16).map((i) => [`k${i}`, i]))), 0xde);
    assert.equal(head(Object.fromEntries(range(65536).map((i) => [`k${i}`, 0]))), 0xdf);
  });

  it('a bigint outside int64/uint64 is a TypeError naming its path', () => {
    assert.throws(() => encode({ type: 't', big: [U64_MAX + 1n] }), /message\.big\[0\].*bigint/);
    assert.throws(
      () => encode({ type: 't', small: I64_MIN - 1n }),
      (e) => e instanceof TypeError && /message\.small/.test(e.message),
    );
  });

  it('nesting: as deep as a reader accepts works; deeper is a TypeError at send, not an unreadable payload', async () => {
    const nest = (depth: number): unknown => {
      let v: unknown = 'leaf';
      for (let i = 0; i < depth; i++) v = i % 2 ? { k: v } : [v];
      return v;
    };
    // The message map is level 0, so `v` at level 1 holding 511 containers puts the leaf at 512.
    const ok = { type: 't', v: nest(511) };
    assert.deepStrictEqual(roundTrip(ok), ok);
    for (const depth of [512, 600, 100_000]) {
      assert.throws(
        () => encode({ type: 't', v: nest(depth) }),
        (err: unknown) =>
          err instanceof TypeError &&
          /^message\.v[.[].* is nested deeper than 512 levels/.test(err.message),
        `depth ${depth}`,
      );
    }
    const layer = new InMemoryChannelLayer();
    try {
      await assert.rejects(layer.send('deep', { type: 't', v: nest(600) }), TypeError);
      assert.equal(layer.activeChannels, 0, 'nothing was queued that no receiver could read');
      await layer.send('deep', ok);
      assert.deepStrictEqual(await layer.receive('deep'), ok);
    } finally {
      await layer.close();
    }
  });

  it('a shared (non-cyclic) reference is fine', () => {
    const shared = { x: 1 };
    assert.deepStrictEqual(roundTrip({ type: 't', a: shared, b: [shared, shared] }), {
      type: 't',
      a: { x: 1 },
      b: [{ x: 1 }, { x: 1 }],
    });
  });

  it('a null-prototype object is a map', () => {
    const o = Object.assign(Object.create(null) as object, { type: 't', a: 1 });
    assert.deepStrictEqual(roundTrip(o), { type: 't', a: 1 });
  });

  it('a failed encode does not disturb the next one', () => {
    assert.throws(() => encode({ type: 't', deep: [{ f: () => 1 }] }), TypeError);
    assert.deepStrictEqual(roundTrip({ type: 'ok', n: 1 }), { type: 'ok', n: 1 });
  });

  it('a `__proto__` key from the wire stays data', () => {
    // Python: {'type': 't', '__proto__': {'polluted': True}}
    const wire = Buffer.from(fixtures.cases.find((c) => c.name === 'proto-key')!.hex, 'hex');
    const got = decode(wire) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(got), Object.prototype);
    assert.ok(Object.hasOwn(got, '__proto__'));
    assert.deepStrictEqual(Object.getOwnPropertyDescriptor(got, '__proto__')?.value, {
      polluted: true,
    });
    assert.equal((got as { polluted?: unknown }).polluted, undefined);
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
    // And it goes back out as data too.
    assert.equal(hex(encode(got)), hex(wire));
  });
});

describe('message validation names the path', () => {
  class Point {
    constructor(
      public x: number,
      public y: number,
    ) {}
  }
  const cyclic: Record<string, unknown> = { type: 't', inner: { list: [] as unknown[] } };
  ((cyclic.inner as { list: unknown[] }).list as unknown[]).push(cyclic.inner);
  const selfRef: Record<string, unknown> = { type: 't' };
  selfRef.self = selfRef;

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['function', { type: 't', fn: () => 1 }, /message\.fn is a function/],
    ['symbol', { type: 't', s: Symbol('x') }, /message\.s is a symbol/],
    [
      'Date deep in a list',
      { type: 't', items: [1, 2, 3, { when: new Date(0) }] },
      /message\.items\[3\]\.when is an instance of Date/,
    ],
    ['class instance', { type: 't', p: new Point(1, 2) }, /message\.p is an instance of Point/],
    ['Map', { type: 't', m: new Map([[1, 2]]) }, /message\.m is an instance of Map/],
    ['Set', { type: 't', a: { b: [new Set()] } }, /message\.a\.b\[0\] is an instance of Set/],
    ['RegExp', { type: 't', r: /x/ }, /message\.r is an instance of RegExp/],
    ['Promise', { type: 't', p: Promise.resolve() }, /message\.p is an instance of Promise/],
    [
      'ArrayBuffer (not a view)',
      { type: 't', ab: new ArrayBuffer(2) },
      /message\.ab is an instance of ArrayBuffer/,
    ],
    ['cycle through a list', cyclic, /message\.inner\.list\[0\] is a reference cycle/],
    ['self reference', selfRef, /message\.self is a reference cycle/],
    [
      'key needing quotes',
      { type: 't', 'my key': { 'a-b': [() => 0] } },
      /message\["my key"\]\["a-b"\]\[0\] is a function/,
    ],
    ['bigint out of range', { type: 't', n: 2n ** 64n }, /message\.n is a bigint outside/],
  ];

  for (const [label, message, re] of bad) {
    it(`msgpack: ${label}`, () => {
      assert.throws(
        () => msgpackSerializer.serialize(message),
        (err: unknown) => err instanceof TypeError && re.test(err.message),
      );
    });
  }

  describe('through InMemoryChannelLayer.send / groupSend', () => {
    const layer = new InMemoryChannelLayer();
    after(() => layer.close());

    for (const [label, message, re] of bad) {
      it(`send rejects (never throws) for a ${label}`, async () => {
        let p: Promise<void> | undefined;
        assert.doesNotThrow(() => {
          p = layer.send('chat', message as Message);
        });
        await assert.rejects(
          p!,
          (err: unknown) => err instanceof TypeError && re.test(err.message),
        );
      });
    }

    const notObjects: Array<[string, unknown]> = [
      ['null', null],
      ['undefined', undefined],
      ['a number', 42],
      ['a string', 'hello'],
      ['a boolean', true],
      ['an array', [{ type: 't' }]],
      ['a Uint8Array', u8(1)],
      ['a Date', new Date()],
      ['a Map', new Map([['type', 't']])],
      [
        'a class instance',
        new (class Msg {
          type = 't';
        })(),
      ],
      ['a function', Object.assign(() => 0, { type: 't' })],
    ];
    for (const [label, message] of notObjects) {
      it(`a message that is ${label} rejects with TypeError`, async () => {
        await assert.rejects(
          layer.send('chat', message as Message),
          (err: unknown) => err instanceof TypeError,
        );
        await assert.rejects(
          layer.groupSend('g', message as Message),
          (err: unknown) => err instanceof TypeError,
        );
      });
    }

    it('a message holding __asgi_channel__ rejects with TypeError naming the key', async () => {
      assert.equal(CHANNEL_FIELD, '__asgi_channel__');
      const m = { type: 't', __asgi_channel__: 'other' };
      await assert.rejects(
        layer.send('chat', m),
        (err: unknown) => err instanceof TypeError && /__asgi_channel__/.test(err.message),
      );
      await assert.rejects(
        layer.groupSend('g', m),
        (err: unknown) => err instanceof TypeError && /__asgi_channel__/.test(err.message),
      );
      // Only the top level is reserved: nested is just data.
      await layer.send('chat', { type: 't', inner: { __asgi_channel__: 'x' } });
      assert.deepEqual(await layer.receive('chat'), {
        type: 't',
        inner: { __asgi_channel__: 'x' },
      });
    });

    it('bad messages leave nothing behind', async () => {
      assert.equal(layer.activeChannels, 0);
      const before = layer.stats();
      await assert.rejects(layer.send('chat', { type: 't', fn: () => 0 } as Message), TypeError);
      assert.deepEqual(layer.stats(), before);
      assert.equal(layer.activeChannels, 0);
    });
  });

  it('assertMessage accepts plain and null-prototype objects', () => {
    assert.doesNotThrow(() => assertMessage({ type: 't' }));
    assert.doesNotThrow(() =>
      assertMessage(Object.assign(Object.create(null) as object, { type: 't' })),
    );
  });
});

describe('JSON serializer', () => {
  it('round-trips JSON-safe messages', () => {
    const m = {
      type: 't',
      s: 'héllo 😀',
      n: 2 ** 53 - 1,
      f: -0.5,
      l: [1, [2, {}]],
      o: { a: null, b: true },
    };
    assert.deepStrictEqual(jsonSerializer.deserialize(jsonSerializer.serialize(m)), m);
    assert.equal(Buffer.from(jsonSerializer.serialize(m)).toString('utf8'), JSON.stringify(m));
  });

  const refused: Array<[string, Record<string, unknown>, RegExp]> = [
    ['bytes', { type: 't', a: { b: u8(1) } }, /message\.a\.b is an instance of Uint8Array/],
    [
      'Buffer',
      { type: 't', list: [0, Buffer.from('x')] },
      /message\.list\[1\] is an instance of Buffer/,
    ],
    ['bigint', { type: 't', n: [[5n]] }, /message\.n\[0\]\[0\] is a bigint/],
    ['Infinity', { type: 't', f: Infinity }, /message\.f is Infinity/],
    ['-Infinity', { type: 't', x: { f: -Infinity } }, /message\.x\.f is -Infinity/],
    ['NaN', { type: 't', f: NaN }, /message\.f is NaN/],
    ['function', { type: 't', f: () => 0 }, /message\.f is a function/],
    [
      'Date',
      { type: 't', items: [0, 1, 2, { when: new Date() }] },
      /message\.items\[3\]\.when is an instance of Date/,
    ],
  ];
  for (const [label, m, re] of refused) {
    it(`refuses ${label} with its path`, () => {
      assert.throws(
        () => jsonSerializer.serialize(m),
        (err: unknown) => err instanceof TypeError && re.test(err.message),
      );
    });
  }

  it('refuses a cycle with its path', () => {
    const m: Record<string, unknown> = { type: 't', a: [] };
    (m.a as unknown[]).push({ back: m });
    assert.throws(() => jsonSerializer.serialize(m), /message\.a\[0\]\.back is a reference cycle/);
  });

  it('a `__proto__` key from the wire stays data', () => {
    const got = jsonSerializer.deserialize(
      Buffer.from('{"type":"t","__proto__":{"polluted":true}}'),
    ) as object;
    assert.equal(Object.getPrototypeOf(got), Object.prototype);
    assert.ok(Object.hasOwn(got, '__proto__'));
    assert.equal((got as { polluted?: unknown }).polluted, undefined);
  });

  it("serializerFormat 'json' is used by a layer and refuses bytes there", async () => {
    const layer = new InMemoryChannelLayer({ serializerFormat: 'json' });
    try {
      await layer.send('c', { type: 't', n: 1, l: ['x'] });
      assert.deepStrictEqual(await layer.receive('c'), { type: 't', n: 1, l: ['x'] });
      await assert.rejects(
        layer.send('c', { type: 't', b: u8(1) }),
        /message\.b is an instance of Uint8Array/,
      );
      await assert.rejects(layer.send('c', { type: 't', n: 1n }), /message\.n is a bigint/);
      assert.equal(layer.activeChannels, 0);
    } finally {
      await layer.close();
    }
  });
});

describe('serializer registry', () => {
  it('has msgpack and json built in', () => {
    assert.equal(getSerializer('msgpack'), msgpackSerializer);
    assert.equal(getSerializer('json'), jsonSerializer);
  });

  it('a registered serializer is used via serializerFormat', async () => {
    const calls = { serialize: 0, deserialize: 0 };
    // A format unlike the built-ins: JSON with its bytes reversed, so a mix-up cannot pass.
    const reversed: Serializer = {
      name: 'reversed-json',
      serialize(message) {
        calls.serialize++;
        return Buffer.from(JSON.stringify(message)).reverse();
      },
      deserialize(bytes) {
        calls.deserialize++;
        return JSON.parse(Buffer.from(bytes).reverse().toString());
      },
    };
    registerSerializer('test-reversed-json', reversed);
    assert.equal(getSerializer('test-reversed-json'), reversed);
    const layer = new InMemoryChannelLayer({ serializerFormat: 'test-reversed-json' });
    try {
      await layer.send('c', { type: 'custom', n: [1, 2] });
      assert.deepStrictEqual(calls, { serialize: 1, deserialize: 0 });
      assert.deepStrictEqual(await layer.receive('c'), { type: 'custom', n: [1, 2] });
      assert.deepStrictEqual(calls, { serialize: 1, deserialize: 1 });
    } finally {
      await layer.close();
    }
  });

  it("a custom serializer's error rejects the send", async () => {
    registerSerializer('test-failing', {
      name: 'test-failing',
      serialize() {
        throw new TypeError('message.x is not allowed by test-failing');
      },
      deserialize: () => ({}),
    });
    const layer = new InMemoryChannelLayer({ serializerFormat: 'test-failing' });
    try {
      await assert.rejects(layer.send('c', { type: 't' }), /not allowed by test-failing/);
    } finally {
      await layer.close();
    }
  });

  it('refuses a registration without serialize/deserialize or without a name', () => {
    assert.throws(() => registerSerializer('x', {} as Serializer), ConfigurationError);
    assert.throws(() => registerSerializer('', msgpackSerializer), ConfigurationError);
  });

  it('an unknown serializerFormat throws ConfigurationError at construction, naming it', () => {
    assert.throws(
      () => new InMemoryChannelLayer({ serializerFormat: 'no-such-format' }),
      (err: unknown) => err instanceof ConfigurationError && err.message.includes('no-such-format'),
    );
  });
});

describe('group messages: __asgi_channel__ written from the names as bytes', () => {
  // Lengths at every msgpack str/array/map header boundary.
  const names = (lengths: number[]): string[] =>
    lengths.map((n, i) => (String(i) + 'é' + 'c'.repeat(n)).slice(0, n));
  const cases: Array<[string, Record<string, unknown>, string[]]> = [
    ['empty message, no channels', {}, []],
    [
      '15 keys (map header grows to map16)',
      Object.fromEntries(range(15).map((i) => [`k${i}`, i])),
      ['a!b'],
    ],
    [
      '16 keys (map16 stays map16)',
      Object.fromEntries(range(16).map((i) => [`k${i}`, i])),
      ['a!b'],
    ],
    ['str edges', { type: 't' }, names([0, 1, 31, 32, 255, 256, 65535, 65536])],
    ['15 channels', { type: 't', n: 1 }, names(range(15).map(() => 74))],
    ['16 channels (array16)', { type: 't', n: 1 }, names(range(16).map(() => 74))],
    ['65536 channels (array32)', { type: 't' }, range(65536).map((i) => `s.x!${i}`)],
  ];
  for (const serializer of [msgpackSerializer, jsonSerializer]) {
    for (const [what, message, channels] of cases) {
      it(`${serializer.name}: ${what} — the same body as encoding the list`, () => {
        const codec = new Codec({ serializer, prefixLength: 12, maxMessageBytes: 1 << 30 });
        const bytes = channels.map((c) => Buffer.from(c));
        const got = codec.groupEncoder(message)(bytes).subarray(12);
        const want = codec.encode({ ...message, [CHANNEL_FIELD]: channels }).subarray(12);
        assert.equal(hex(got), hex(want));
      });
    }
  }

  it('checks the message before any channel list: bad values and size', () => {
    const codec = new Codec({
      serializer: msgpackSerializer,
      prefixLength: 12,
      maxMessageBytes: 64,
    });
    assert.throws(() => codec.groupEncoder({ f: () => 1 }), TypeError);
    assert.throws(() => codec.groupEncoder({ blob: 'x'.repeat(100) }), MessageTooLarge);
    const encodeFor = codec.groupEncoder({ type: 't' });
    assert.throws(() => encodeFor([Buffer.from('c'.repeat(100))]), MessageTooLarge);
  });
});

describe('Codec: size limit, framing, unreadable payloads', () => {
  it('MessageTooLarge above maxMessageBytes; exactly the limit works', async () => {
    const limit = 1000;
    const base = encode({ type: 't', s: '' }).length;
    // Pick a string length whose encoded message is exactly `limit` bytes (str8 → str16 header).
    let n = limit - base;
    while (encode({ type: 't', s: 'x'.repeat(n) }).length > limit) n--;
    assert.equal(encode({ type: 't', s: 'x'.repeat(n) }).length, limit);
    const layer = new InMemoryChannelLayer({ maxMessageBytes: limit });
    try {
      await layer.send('c', { type: 't', s: 'x'.repeat(n) });
      assert.equal(((await layer.receive('c')) as unknown as { s: string }).s.length, n);
      await assert.rejects(layer.send('c', { type: 't', s: 'x'.repeat(n + 1) }), (err: unknown) => {
        assert.ok(err instanceof MessageTooLarge);
        assert.equal(err.size, limit + 1);
        assert.equal(err.limit, limit);
        return true;
      });
      await assert.rejects(
        layer.groupSend('g', { type: 't', s: 'x'.repeat(n + 1) }),
        MessageTooLarge,
      );
      assert.equal(layer.activeChannels, 0);
    } finally {
      await layer.close();
    }
  });

  it('the default limit is 4 MiB: a message just under it works, one over it does not', async () => {
    const layer = new InMemoryChannelLayer();
    try {
      const big = { type: 't', blob: new Uint8Array(4 * 1024 * 1024 - 64).fill(0xab) };
      await layer.send('big', big);
      const got = (await layer.receive('big')) as unknown as { blob: Uint8Array };
      assert.equal(got.blob.length, big.blob.length);
      assert.ok(got.blob.every((b) => b === 0xab));
      const tooBig = { type: 't', s: 'y'.repeat(4 * 1024 * 1024) };
      await assert.rejects(layer.send('big', tooBig), MessageTooLarge);
    } finally {
      await layer.close();
    }
  });

  it('frames with a random prefix and unframes', () => {
    const codec = new Codec({
      serializer: msgpackSerializer,
      prefixLength: 12,
      maxMessageBytes: 1 << 20,
    });
    const m = { type: 'chat', n: 1 };
    const a = codec.encode(m);
    const b = codec.encode(m);
    assert.equal(a.length, 12 + encode(m).length);
    assert.equal(hex(a.subarray(12)), hex(encode(m)));
    assert.notEqual(
      hex(a.subarray(0, 12)),
      hex(b.subarray(0, 12)),
      'two frames of one message differ',
    );
    assert.deepStrictEqual(codec.decode(a), m);
    assert.deepStrictEqual(codec.decode(b), m);
  });

  it('the size limit applies to the body, not the prefix', () => {
    const body = encode({ type: 't' });
    const codec = new Codec({
      serializer: msgpackSerializer,
      prefixLength: 12,
      maxMessageBytes: body.length,
    });
    assert.equal(codec.encode({ type: 't' }).length, body.length + 12);
    assert.throws(() => codec.encode({ type: 'tt' }), MessageTooLarge);
  });

  const corrupt: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['truncated map', encode({ type: 'chat', text: 'hello' }).subarray(0, 10)],
    ['trailing bytes', Buffer.concat([encode({ type: 't' }), Buffer.from([0])])],
    ['reserved byte 0xc1', Buffer.from([0xc1])],
    ['ext type', Buffer.from('81a174d40102', 'hex')],
    ['a list, not a map', encode([1, 2])],
    ['an int, not a map', encode(5)],
    ['nil', encode(null)],
    ['map with a list key', Buffer.from('81910102', 'hex')],
    ['str32 claiming 4 GiB', Buffer.from('81a174dbffffffff', 'hex')],
    ['nested far too deep', Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0xc0])])],
    ['random garbage', Buffer.from('ff00deadbeefcafe', 'hex')],
  ];
  for (const [label, bytes] of corrupt) {
    it(`decode of a corrupt payload (${label}) throws UnreadablePayload`, () => {
      const codec = new Codec({
        serializer: msgpackSerializer,
        prefixLength: 0,
        maxMessageBytes: 1 << 20,
      });
      assert.throws(() => codec.decode(bytes), UnreadablePayload);
    });
  }

  it('JSON decode of a corrupt payload throws UnreadablePayload', () => {
    const codec = new Codec({
      serializer: jsonSerializer,
      prefixLength: 0,
      maxMessageBytes: 1 << 20,
    });
    assert.throws(() => codec.decode(Buffer.from('{"type": ')), UnreadablePayload);
    assert.throws(() => codec.decode(Buffer.from('[1]')), UnreadablePayload);
  });

  it('a framed payload shorter than its prefix is unreadable', () => {
    const codec = new Codec({
      serializer: msgpackSerializer,
      prefixLength: 12,
      maxMessageBytes: 1 << 20,
    });
    assert.throws(() => codec.decode(Buffer.alloc(5)), UnreadablePayload);
  });
});
