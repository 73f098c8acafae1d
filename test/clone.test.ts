/** Fan-out copies of a decoded message: every receiver gets its own, equal, unshared copy. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cloneDecoded, copier } from '../lib/serde/clone.ts';
import { decode, encode } from '../lib/serde/msgpack.ts';

describe('copier', () => {
  it('a flat message: an equal copy, a new object each call', () => {
    const message = { type: 'chat', n: 1, big: 2n ** 70n, ok: true, none: null, text: 'hi' };
    const copy = copier(message);
    const a = copy();
    const b = copy();
    assert.deepEqual(a, message);
    assert.notEqual(a, message);
    assert.notEqual(a, b);
    a.text = 'changed';
    assert.equal(message.text, 'hi');
    assert.equal(b.text, 'hi');
  });

  it('a nested message: nothing shared at any depth', () => {
    const message = { type: 'x', list: [1, { deep: 'v' }], bytes: new Uint8Array([1, 2]) };
    const a = copier(message)();
    assert.deepEqual(a, message);
    (a.list[1] as { deep: string }).deep = 'changed';
    a.bytes[0] = 9;
    assert.equal((message.list[1] as { deep: string }).deep, 'v');
    assert.equal(message.bytes[0], 1);
  });

  it('a `__proto__` key from the wire stays data in the copy (flat and nested)', () => {
    for (const inner of ['polluted', { polluted: true }]) {
      const message = decode(
        Buffer.concat([
          Buffer.from([0x82]),
          encode('__proto__'),
          encode(inner),
          encode('t'),
          encode(1),
        ]),
      ) as Record<string, unknown>;
      const copy = copier(message)();
      assert.equal(Object.getPrototypeOf(copy), Object.prototype);
      assert.ok(Object.hasOwn(copy, '__proto__'));
      assert.deepEqual(Object.getOwnPropertyDescriptor(copy, '__proto__')?.value, inner);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    }
  });

  it('a class instance (a custom serializer): nothing shared with it or between copies', () => {
    class Point {
      constructor(
        public x: number,
        public tags: string[],
      ) {}
    }
    const point = new Point(1, ['a']);
    const copy = copier(point);
    const a = copy();
    const b = copy();
    assert.deepEqual(a, cloneDecoded(point));
    assert.deepEqual(a.tags, ['a']);
    // A spread would share `tags` between the original and every copy.
    a.tags.push('changed');
    assert.deepEqual(point.tags, ['a']);
    assert.deepEqual(b.tags, ['a']);
  });
});
