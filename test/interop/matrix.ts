/**
 * The msgpack type matrix for the interop tests: every field of one message, in the form each
 * side writes and the form the other side must read. Sent as ONE message per direction, checked
 * field by field so a failure names the field.
 *
 * FROM_PYTHON: the Python value (tagged) → the JS value Node must receive (docs/wire-protocol.md: ints beyond
 *   ±2^53 as bigint, non-integers as number, bin as Uint8Array, -0.0 stays -0).
 * FROM_NODE:   the JS value Node sends → the Python value channels_redis must receive (exact
 *   type: an integer-valued JS number is a Python int — except -0, a float — a bigint is a
 *   Python int, Uint8Array and Buffer are bytes, undefined is None).
 */
import assert from 'node:assert/strict';
import {
  bool,
  bytes,
  field,
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
  type Tagged,
} from './tagged.ts';

const p = (e: number): bigint => 2n ** BigInt(e);

/** Integers at every msgpack width boundary, and the float-precision edges around ±2^53. */
export const INT_EDGES: bigint[] = [
  0n,
  1n,
  127n,
  128n,
  255n,
  256n,
  65535n,
  65536n,
  p(31) - 1n,
  p(31),
  p(32) - 1n,
  p(32),
  p(53) - 1n,
  p(53),
  p(53) + 1n,
  p(63) - 1n,
  p(63),
  p(64) - 2n,
  p(64) - 1n,
  -1n,
  -31n,
  -32n,
  -33n,
  -127n,
  -128n,
  -129n,
  -32768n,
  -32769n,
  -p(31),
  -p(31) - 1n,
  -p(32),
  -(p(53) - 1n),
  -p(53),
  -(p(53) + 1n),
  -p(63) + 1n,
  -p(63),
];

const utf8Len = (s: string): number => Buffer.byteLength(s);
const repeat = (unit: string, bytesWanted: number): string =>
  unit.repeat(Math.floor(bytesWanted / utf8Len(unit)));

/** Strings at fixstr/str8/str16/str32 boundaries (in UTF-8 bytes), and unicode of every width. */
export const STRINGS: Record<string, string> = {
  empty: '',
  ascii: 'hello',
  fixstr31: 'a'.repeat(31),
  str8_32: 'a'.repeat(32),
  str8_255: 'a'.repeat(255),
  str16_256: 'a'.repeat(256),
  str16_65535: 'a'.repeat(65535),
  str32_65536: 'a'.repeat(65536),
  two_byte_32: repeat('é', 32), // 16 UTF-16 units, 32 UTF-8 bytes: str8, not fixstr
  three_byte: '☃ 日本語 €',
  astral: '😀🎉 𝄞', // surrogate pairs in JS, 4-byte UTF-8
  astral_str8: repeat('😀', 40),
  nul_and_controls: 'a\u0000b\n\t\r\u001f\u007f',
  mixed: 'héllo wörld ☃ 😀 日本',
  bom_and_specials: '\ufeff\u2028\u2029\ufffd',
};

const bin = (n: number, seed = 0): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** bin8/bin16/bin32 boundaries. */
export const BYTES: Record<string, Uint8Array> = {
  empty: new Uint8Array(0),
  two: new Uint8Array([0x00, 0xff]),
  bin8_255: bin(255),
  bin16_256: bin(256, 1),
  bin16_65535: bin(65535, 2),
  bin32_65536: bin(65536, 3),
  high_bytes: Uint8Array.from({ length: 256 }, (_, i) => i),
};

/** Non-integer doubles both sides keep bit-exact. */
export const FLOATS: Record<string, number> = {
  half: 0.5,
  tenth: 0.1,
  negative: -1.5,
  pi: Math.PI,
  tiny: 5e-324,
  small_normal: 2.2250738585072014e-308,
  huge: 1.7976931348623157e308,
  big_exp: 1e300,
  inf: Infinity,
  neg_inf: -Infinity,
  nan: NaN,
  beyond_uint64: 2 ** 64, // integral but outside int64/uint64: float64
  below_int64: -(2 ** 64),
};

function nested(depth: number): Tagged {
  let node: Tagged = map({ leaf: bool(true) });
  for (let i = 0; i < depth; i++) node = i % 2 ? map({ d: node }) : list(node);
  return node;
}

function nestedJs(depth: number): unknown {
  let node: unknown = { leaf: true };
  for (let i = 0; i < depth; i++) node = i % 2 ? { d: node } : [node];
  return node;
}

const keysMap = (n: number): Record<string, unknown> =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));

/** Values whose JS form and Python form map onto each other exactly, in both directions. */
function symmetric(): Array<[string, Tagged, unknown]> {
  const rows: Array<[string, Tagged, unknown]> = [];
  for (const n of INT_EDGES) rows.push([`int_${n}`, int(n), untag(int(n))]);
  for (const [k, s] of Object.entries(STRINGS)) rows.push([`str_${k}`, str(s), s]);
  for (const [k, b] of Object.entries(BYTES)) rows.push([`bytes_${k}`, bytes(b), b]);
  for (const [k, f] of Object.entries(FLOATS)) rows.push([`float_${k}`, tag(f), f]);
  rows.push(
    ['true', bool(true), true],
    ['false', bool(false), false],
    ['none', nil, null],
    ['empty_map', map({}), {}],
    ['empty_list', list(), []],
    ['empty_nested', list(map({}), list(), str('')), [{}, [], '']],
    [
      'fixarray15',
      tag(Array.from({ length: 15 }, (_, i) => i)),
      Array.from({ length: 15 }, (_, i) => i),
    ],
    [
      'array16_16',
      tag(Array.from({ length: 16 }, (_, i) => i)),
      Array.from({ length: 16 }, (_, i) => i),
    ],
    ['array32_65536', tag(new Array(65536).fill(7)), new Array(65536).fill(7)],
    ['fixmap15', tag(keysMap(15)), keysMap(15)],
    ['map16_16', tag(keysMap(16)), keysMap(16)],
    [
      'nested',
      map({
        users: list(map({ id: int(1), tags: list(str('a'), str('b')), raw: bytes('beef') })),
        meta: map({ count: int(p(60)), ratio: float('0.25'), none: nil }),
      }),
      {
        users: [{ id: 1, tags: ['a', 'b'], raw: new Uint8Array([0xbe, 0xef]) }],
        meta: { count: p(60), ratio: 0.25, none: null },
      },
    ],
    ['deep_100', nested(100), nestedJs(100)],
  );
  return rows;
}

/** Python value → JS value, for Python → Node. */
export const FROM_PYTHON: Array<[string, Tagged, unknown]> = [
  ...symmetric(),
  // Integral floats arrive as (float64) numbers; JS cannot tell 1.0 from 1.
  ['pyfloat_one', float('1.0'), 1],
  ['pyfloat_neg_zero', float('-0.0'), -0],
  ['pyfloat_2e53', float('9007199254740992.0'), 2 ** 53],
  ['pyfloat_1e20', float('1e+20'), 1e20],
  // An integer-like key stays a string key.
  ['map_numeric_like_key', map({ '1': int(1), '0': str('z') }), { '1': 1, '0': 'z' }],
];

/** JS value → Python value, for Node → Python. */
export const FROM_NODE: Array<[string, unknown, Tagged]> = [
  ...symmetric().map(([k, py, js]): [string, unknown, Tagged] => [k, js, py]),
  // Small bigints are ints like any other.
  ['bigint_small', 5n, int(5)],
  ['bigint_neg_small', -7n, int(-7)],
  ['bigint_zero', 0n, int(0)],
  ['bigint_2e31', p(31), int(p(31))],
  // Integral numbers are ints across the whole range, even beyond 2^53 where JS is inexact.
  ['number_2e53', 2 ** 53, int(p(53))],
  ['number_2e63', 2 ** 63, int(p(63))],
  ['number_neg_2e63', -(2 ** 63), int(-p(63))],
  ['number_1e19', 1e19, int(10n ** 19n)],
  ['number_neg_zero', -0, float('-0.0')],
  ['number_one_point_zero', 1.0, int(1)],
  ['undefined', undefined, nil],
  ['buffer', Buffer.from([1, 2, 3]), bytes('010203')],
  ['buffer_slice', Buffer.from([9, 8, 7, 6]).subarray(1, 3), bytes('0807')],
  ['uint8array_view', new Uint8Array(new Uint8Array([5, 6, 7, 8]).buffer, 1, 2), bytes('0607')],
];

export const MATRIX_TYPE = 'interop.matrix';

/** The whole Python → Node matrix as one tagged message. */
export function pythonMatrixMessage(): Tagged {
  const entries: [Tagged, Tagged][] = [[str('type'), str(MATRIX_TYPE)]];
  for (const [k, py] of FROM_PYTHON) entries.push([str(k), py]);
  return { t: 'map', v: entries };
}

/** The whole Node → Python matrix as one JS message. */
export function nodeMatrixMessage(): { type: string } & Record<string, unknown> {
  const msg: { type: string } & Record<string, unknown> = { type: MATRIX_TYPE };
  for (const [k, js] of FROM_NODE) msg[k] = js;
  return msg;
}

/** Node received the Python matrix: every field has exactly the expected JS value and type. */
export function checkNodeReceived(received: Record<string, unknown>): void {
  assert.equal(received.type, MATRIX_TYPE);
  const failures: string[] = [];
  for (const [k, , expected] of FROM_PYTHON) {
    try {
      assert.deepStrictEqual(received[k], expected);
    } catch {
      failures.push(`${k}: got ${describeJs(received[k])}, want ${describeJs(expected)}`);
    }
  }
  assert.equal(
    Object.keys(received).length,
    FROM_PYTHON.length + 1,
    'no extra or missing fields (__asgi_channel__ stripped)',
  );
  assert.deepEqual(failures, [], failures.join('\n'));
}

/** Python received the Node matrix: every field has exactly the expected Python value and type. */
export function checkPythonReceived(received: Tagged): void {
  const failures: string[] = [];
  for (const [k, , expected] of FROM_NODE) {
    const got = field(received, k);
    if (got === undefined || !sameTagged(got, expected)) {
      failures.push(`${k}: got ${show(got)}, want ${show(expected)}`);
    }
  }
  assert.ok(received.t === 'map');
  assert.equal(received.v.length, FROM_NODE.length + 1, 'no extra or missing fields');
  assert.deepEqual(failures, [], failures.join('\n'));
}

function describeJs(v: unknown): string {
  if (typeof v === 'bigint') return `bigint ${v}`;
  if (typeof v === 'number') return `number ${Object.is(v, -0) ? '-0' : v}`;
  if (typeof v === 'string') return `string(${v.length}) ${JSON.stringify(v.slice(0, 30))}`;
  if (v instanceof Uint8Array) {
    return `${v.constructor.name}(${v.length}) ${Buffer.from(v).toString('hex').slice(0, 16)}`;
  }
  if (Array.isArray(v)) return `array(${v.length})`;
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  return typeof v === 'object' ? `object{${Object.keys(v).slice(0, 5).join(',')}}` : String(v);
}
