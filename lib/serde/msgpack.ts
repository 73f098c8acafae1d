/**
 * MessagePack, byte-identical to Python's `msgpack.packb(m, use_bin_type=True)` and read like
 * `msgpack.unpackb(b, raw=False)`.
 *
 * Why not a library: @msgpack/msgpack and msgpackr either write integers ≥ 2^32 as float64 or
 * decode every 64-bit integer to the same JS type; chanlayer keeps ints ints over the whole
 * int64/uint64 range, `number` up to 2^53 and `bigint` beyond. The format is small enough to own,
 * and owning it lets the encoder validate (and name the path of) a bad value in the same walk.
 */
import { describe, isPlainObject, unsupportedValue, type PathStep } from './paths.ts';
import type { Serializer } from './types.ts';

const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
const TWO_32 = 0x1_0000_0000;
/** Deepest nesting level (the message itself is level 0) that encode writes and decode reads. */
const MAX_DEPTH = 512;
const SCRATCH_LIMIT = 1 << 20;

class Writer {
  buf = Buffer.allocUnsafe(4096);
  pos = 0;
  /** Ancestors of the value being written: a cycle is an object that is its own ancestor. */
  readonly stack: object[] = [];
  readonly path: PathStep[] = [];

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  header(b: number, value: number, bytes: 1 | 2 | 4): void {
    this.ensure(1 + bytes);
    this.buf[this.pos++] = b;
    if (bytes === 1) this.buf[this.pos] = value;
    else if (bytes === 2) this.buf.writeUInt16BE(value, this.pos);
    else this.buf.writeUInt32BE(value, this.pos);
    this.pos += bytes;
  }

  value(v: unknown): void {
    // Never write what decode() refuses to read: the message would be accepted, then unreadable.
    if (this.path.length > MAX_DEPTH) {
      throw unsupportedValue(this.path, `nested deeper than ${MAX_DEPTH} levels`);
    }
    switch (typeof v) {
      case 'string':
        return this.string(v);
      case 'number':
        // -0 stays a float (Python's -0.0); an int would lose the sign.
        return Number.isInteger(v) && v >= -(2 ** 63) && v < 2 ** 64 && !Object.is(v, -0)
          ? this.int(v)
          : this.float(v);
      case 'boolean':
        return this.u8(v ? 0xc3 : 0xc2);
      case 'bigint':
        if (v < INT64_MIN || v > UINT64_MAX) {
          throw unsupportedValue(this.path, 'a bigint outside the int64/uint64 range');
        }
        return this.bigint(v);
      case 'undefined':
        return this.u8(0xc0);
      case 'object':
        if (v === null) return this.u8(0xc0);
        if (v instanceof Uint8Array) return this.bin(v);
        return this.container(v);
      default:
        throw unsupportedValue(this.path, describe(v));
    }
  }

  int(n: number): void {
    if (n >= 0) {
      if (n < 0x80) return this.u8(n);
      if (n <= 0xff) return this.header(0xcc, n, 1);
      if (n <= 0xffff) return this.header(0xcd, n, 2);
      if (n < TWO_32) return this.header(0xce, n, 4);
    } else {
      if (n >= -0x20) return this.u8(n & 0xff);
      if (n >= -0x80) return this.header(0xd0, n & 0xff, 1);
      if (n >= -0x8000) return this.header(0xd1, n & 0xffff, 2);
      if (n >= -0x8000_0000) return this.header(0xd2, n >>> 0, 4);
    }
    return this.int64(BigInt(n));
  }

  bigint(n: bigint): void {
    // Same bytes Python writes for the same integer, whatever JS type carried it.
    if (n >= -0x8000_0000n && n < 0x1_0000_0000n) return this.int(Number(n));
    this.int64(n);
  }

  int64(n: bigint): void {
    this.ensure(9);
    if (n >= 0n) {
      this.buf[this.pos++] = 0xcf;
      this.buf.writeBigUInt64BE(n, this.pos);
    } else {
      this.buf[this.pos++] = 0xd3;
      this.buf.writeBigInt64BE(n, this.pos);
    }
    this.pos += 8;
  }

  float(n: number): void {
    this.ensure(9);
    this.buf[this.pos++] = 0xcb;
    this.buf.writeDoubleBE(n, this.pos);
    this.pos += 8;
  }

  string(s: string): void {
    // Every UTF-16 unit is at most 3 UTF-8 bytes, so short strings skip the length scan.
    const size = s.length * 3 < 32 ? -1 : Buffer.byteLength(s);
    if (size === -1) {
      this.ensure(1 + s.length * 3);
      const written = this.buf.write(s, this.pos + 1);
      this.buf[this.pos] = 0xa0 | written;
      this.pos += 1 + written;
      return;
    }
    this.strHeader(size);
    this.ensure(size);
    this.pos += this.buf.write(s, this.pos);
  }

  strHeader(size: number): void {
    if (size < 32) this.u8(0xa0 | size);
    else if (size <= 0xff) this.header(0xd9, size, 1);
    else if (size <= 0xffff) this.header(0xda, size, 2);
    else this.header(0xdb, size, 4);
  }

  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n <= 0xffff) this.header(0xdc, n, 2);
    else this.header(0xdd, n, 4);
  }

  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 | n);
    else if (n <= 0xffff) this.header(0xde, n, 2);
    else this.header(0xdf, n, 4);
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.byteLength);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.byteLength;
  }

  bin(b: Uint8Array): void {
    const size = b.byteLength;
    if (size <= 0xff) this.header(0xc4, size, 1);
    else if (size <= 0xffff) this.header(0xc5, size, 2);
    else this.header(0xc6, size, 4);
    this.raw(b);
  }

  container(o: object): void {
    if (this.stack.includes(o)) throw unsupportedValue(this.path, 'a reference cycle');
    this.stack.push(o);
    if (Array.isArray(o)) {
      const n = o.length;
      this.arrayHeader(n);
      for (let i = 0; i < n; i++) {
        this.path.push(i);
        this.value(o[i]);
        this.path.pop();
      }
    } else if (isPlainObject(o)) {
      const keys = Object.keys(o);
      this.mapHeader(keys.length);
      for (const key of keys) {
        this.string(key);
        this.path.push(key);
        this.value(o[key]);
        this.path.pop();
      }
    } else {
      throw unsupportedValue(this.path, describe(o));
    }
    this.stack.pop();
  }
}

// One writer reused by every encode: a message is written synchronously, so nothing interleaves.
const writer = new Writer();

function reset(): void {
  writer.pos = 0;
  writer.stack.length = 0;
  writer.path.length = 0;
}

/** The writer's bytes, as a buffer of their own. */
function written(): Buffer {
  const out = Buffer.allocUnsafe(writer.pos);
  writer.buf.copy(out, 0, 0, writer.pos);
  // One huge message must not pin a huge scratch buffer for the life of the process.
  if (writer.buf.length > SCRATCH_LIMIT) writer.buf = Buffer.allocUnsafe(4096);
  return out;
}

export function encode(value: unknown): Buffer {
  reset();
  writer.value(value);
  return written();
}

/**
 * `map` (an encoded msgpack map) with one more entry, last: `key` → an array of strings given
 * as their UTF-8 bytes. The same bytes as encoding the map with that entry added, without
 * decoding the map or turning the strings (a group's 1,000s of channel names, as Redis gave
 * them) into JS strings and back.
 */
export function withStringArray(
  map: Uint8Array,
  key: string,
  strings: readonly Uint8Array[],
): Buffer {
  const buf = Buffer.from(map.buffer, map.byteOffset, map.byteLength);
  const b = buf[0] ?? 0;
  let size: number;
  let head: number;
  if (b >= 0x80 && b <= 0x8f) [size, head] = [b & 0x0f, 1];
  else if (b === 0xde && buf.length >= 3) [size, head] = [buf.readUInt16BE(1), 3];
  else if (b === 0xdf && buf.length >= 5) [size, head] = [buf.readUInt32BE(1), 5];
  else throw new TypeError('withStringArray needs an encoded msgpack map');
  reset();
  writer.mapHeader(size + 1);
  writer.raw(buf.subarray(head));
  writer.string(key);
  writer.arrayHeader(strings.length);
  for (const s of strings) {
    writer.strHeader(s.byteLength);
    writer.raw(s);
  }
  return written();
}

export class MsgpackDecodeError extends Error {
  override name = 'MsgpackDecodeError';
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new MsgpackDecodeError('truncated msgpack data');
  }

  value(depth: number): unknown {
    if (depth > MAX_DEPTH) throw new MsgpackDecodeError(`msgpack nesting deeper than ${MAX_DEPTH}`);
    this.need(1);
    const b = this.buf[this.pos++]!;
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return this.str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b <= 0x8f) return this.map(b & 0x0f, depth);
    const buf = this.buf;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bin(this.len(1));
      case 0xc5:
        return this.bin(this.len(2));
      case 0xc6:
        return this.bin(this.len(4));
      case 0xca:
        this.need(4);
        this.pos += 4;
        return buf.readFloatBE(this.pos - 4);
      case 0xcb:
        this.need(8);
        this.pos += 8;
        return buf.readDoubleBE(this.pos - 8);
      case 0xcc:
        return this.len(1);
      case 0xcd:
        return this.len(2);
      case 0xce:
        return this.len(4);
      case 0xcf:
        this.need(8);
        this.pos += 8;
        return narrow(buf.readBigUInt64BE(this.pos - 8));
      case 0xd0:
        this.need(1);
        return buf.readInt8(this.pos++);
      case 0xd1:
        this.need(2);
        this.pos += 2;
        return buf.readInt16BE(this.pos - 2);
      case 0xd2:
        this.need(4);
        this.pos += 4;
        return buf.readInt32BE(this.pos - 4);
      case 0xd3:
        this.need(8);
        this.pos += 8;
        return narrow(buf.readBigInt64BE(this.pos - 8));
      case 0xd9:
        return this.str(this.len(1));
      case 0xda:
        return this.str(this.len(2));
      case 0xdb:
        return this.str(this.len(4));
      case 0xdc:
        return this.array(this.len(2), depth);
      case 0xdd:
        return this.array(this.len(4), depth);
      case 0xde:
        return this.map(this.len(2), depth);
      case 0xdf:
        return this.map(this.len(4), depth);
      default:
        throw new MsgpackDecodeError(`unsupported msgpack type 0x${b.toString(16)}`);
    }
  }

  len(bytes: 1 | 2 | 4): number {
    this.need(bytes);
    const p = this.pos;
    this.pos += bytes;
    if (bytes === 1) return this.buf[p]!;
    return bytes === 2 ? this.buf.readUInt16BE(p) : this.buf.readUInt32BE(p);
  }

  str(size: number): string {
    this.need(size);
    this.pos += size;
    return this.buf.toString('utf8', this.pos - size, this.pos);
  }

  bin(size: number): Uint8Array {
    this.need(size);
    this.pos += size;
    // A copy, so a decoded message never pins the (possibly large) reply buffer.
    return new Uint8Array(this.buf.subarray(this.pos - size, this.pos));
  }

  array(n: number, depth: number): unknown[] {
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  map(n: number, depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const key = this.value(depth + 1);
      if (typeof key !== 'string' && typeof key !== 'number') {
        throw new MsgpackDecodeError('msgpack map key is neither a string nor a number');
      }
      const value = this.value(depth + 1);
      // A `__proto__` key from the wire must stay data, never become the prototype.
      if (key === '__proto__') {
        Object.defineProperty(out, key, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else out[key] = value;
    }
    return out;
  }
}

const TWO_53 = 2n ** 53n;

/** `number` while exact (|n| ≤ 2^53), `bigint` beyond (docs/wire-protocol.md §8). */
function narrow(n: bigint): number | bigint {
  return n >= -TWO_53 && n <= TWO_53 ? Number(n) : n;
}

export function decode(bytes: Uint8Array): unknown {
  const buf = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const reader = new Reader(buf);
  const value = reader.value(0);
  if (reader.pos !== buf.length) throw new MsgpackDecodeError('trailing bytes after msgpack value');
  return value;
}

export const msgpackSerializer: Serializer = {
  name: 'msgpack',
  serialize: encode,
  deserialize: decode,
};
