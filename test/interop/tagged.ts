/**
 * The tagged value form the Python peer (test/interop/peer.py) speaks, so Python's exact types
 * survive JSON: an int stays an int at any size, a float stays a float (±inf, nan, -0.0), bytes
 * stay bytes. These helpers are test-side code, independent of chanlayer's msgpack: `tag` is the
 * Python value docs/wire-protocol.md says a JS value must become, `untag` is the JS value a Python value must
 * arrive as.
 */
export type Tagged =
  | { t: 'nil' }
  | { t: 'bool'; v: boolean }
  | { t: 'int'; v: string }
  | { t: 'float'; v: string }
  | { t: 'str'; v: string }
  | { t: 'bytes'; v: string }
  | { t: 'list'; v: Tagged[] }
  | { t: 'map'; v: [Tagged, Tagged][] };

// Constructors, for readable test tables.
export const nil: Tagged = { t: 'nil' };
export const bool = (v: boolean): Tagged => ({ t: 'bool', v });
export const int = (v: bigint | number | string): Tagged => ({ t: 'int', v: String(v) });
/** `v` is Python's `repr(float)`: '0.5', '-0.0', 'inf', '-inf', 'nan', '1e+300'. */
export const float = (v: string): Tagged => ({ t: 'float', v });
export const str = (v: string): Tagged => ({ t: 'str', v });
export const bytes = (v: Uint8Array | string): Tagged => ({
  t: 'bytes',
  v: typeof v === 'string' ? v : Buffer.from(v).toString('hex'),
});
export const list = (...v: Tagged[]): Tagged => ({ t: 'list', v });
export const map = (entries: Record<string, Tagged>): Tagged => ({
  t: 'map',
  v: Object.entries(entries).map(([k, v]) => [str(k), v]),
});

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** JS number → Python float repr (what `float(x)` parses back to the same double). */
export function floatRepr(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (n === Infinity) return 'inf';
  if (n === -Infinity) return '-inf';
  if (Object.is(n, -0)) return '-0.0';
  return String(n);
}

/** The Python value a JS value must arrive as, by the msgpack rules of docs/wire-protocol.md. */
export function tag(value: unknown): Tagged {
  if (value === null || value === undefined) return nil;
  switch (typeof value) {
    case 'boolean':
      return bool(value);
    case 'bigint':
      return int(value);
    case 'number': {
      // -0 stays a float (Python's -0.0): an int would lose the sign.
      if (Number.isInteger(value) && !Object.is(value, -0)) {
        const big = BigInt(value);
        if (big >= INT64_MIN && big <= UINT64_MAX) return int(big);
      }
      return float(floatRepr(value));
    }
    case 'string':
      return str(value);
    case 'object': {
      if (value instanceof Uint8Array) return bytes(value);
      if (Array.isArray(value)) return { t: 'list', v: value.map(tag) };
      return {
        t: 'map',
        v: Object.entries(value as Record<string, unknown>).map(([k, v]) => [str(k), tag(v)]),
      };
    }
    default:
      throw new TypeError(`cannot tag a ${typeof value}`);
  }
}

/** The JS value a Python value must arrive as: ints beyond ±2^53 as bigint, bytes as Uint8Array. */
export function untag(node: Tagged): unknown {
  switch (node.t) {
    case 'nil':
      return null;
    case 'bool':
      return node.v;
    case 'int': {
      const n = BigInt(node.v);
      return n >= -(2n ** 53n) && n <= 2n ** 53n ? Number(n) : n;
    }
    case 'float':
      if (node.v === 'inf') return Infinity;
      if (node.v === '-inf') return -Infinity;
      if (node.v === 'nan') return NaN;
      return Number(node.v);
    case 'str':
      return node.v;
    case 'bytes':
      return new Uint8Array(Buffer.from(node.v, 'hex'));
    case 'list':
      return node.v.map(untag);
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [k, v] of node.v) {
        Object.defineProperty(out, String(untag(k)), {
          value: untag(v),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
  }
}

/** A tagged map's entry by string key (for looking at one field of a received message). */
export function field(node: Tagged, key: string): Tagged | undefined {
  if (node.t !== 'map') throw new TypeError(`not a map: ${node.t}`);
  return node.v.find(([k]) => k.t === 'str' && k.v === key)?.[1];
}

/** Tagged values are equal when their Python values are identical (floats by bit pattern). */
export function sameTagged(a: Tagged, b: Tagged): boolean {
  if (a.t !== b.t) return false;
  switch (a.t) {
    case 'nil':
      return true;
    case 'float':
      return Object.is(untag(a), untag(b));
    case 'list': {
      const bv = (b as typeof a).v;
      return a.v.length === bv.length && a.v.every((x, i) => sameTagged(x, bv[i]!));
    }
    case 'map': {
      const bv = (b as typeof a).v;
      return (
        a.v.length === bv.length &&
        a.v.every(([k, v], i) => sameTagged(k, bv[i]![0]) && sameTagged(v, bv[i]![1]))
      );
    }
    case 'int':
      return BigInt(a.v) === BigInt((b as typeof a).v);
    default:
      return a.v === (b as typeof a).v;
  }
}

/** Short human form for assertion messages. */
export function show(node: Tagged | undefined): string {
  if (node === undefined) return '(missing)';
  switch (node.t) {
    case 'nil':
      return 'None';
    case 'list':
      return `[${node.v.map(show).join(', ')}]`;
    case 'map':
      return `{${node.v.map(([k, v]) => `${show(k)}: ${show(v)}`).join(', ')}}`;
    case 'str': {
      const s = JSON.stringify(node.v.length > 40 ? node.v.slice(0, 40) + '…' : node.v);
      return `str ${s} (${node.v.length} units)`;
    }
    case 'bytes':
      return `bytes(${node.v.length / 2}) ${node.v.slice(0, 16)}${node.v.length > 16 ? '…' : ''}`;
    default:
      return `${node.t} ${String(node.v)}`;
  }
}
