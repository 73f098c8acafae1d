/**
 * A deep copy of a decoded message, for fan-out: one decoded group message, one copy per local
 * member channel (a receiver may mutate what it got). Decoded values are plain data — plain
 * objects, arrays, Uint8Array, strings, numbers, bigints, booleans, null — so a direct walk does
 * it several times faster than `structuredClone` (about 0.1 µs against 0.8 µs for a small
 * message, times 1,000 members). Anything else (a custom serializer's class instance) falls
 * back to `structuredClone`.
 */
export function cloneDecoded<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = cloneDecoded(value[i]);
    return out as T;
  }
  if (value instanceof Uint8Array) return new Uint8Array(value) as T;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return structuredClone(value);
  const out: Record<string, unknown> = proto === null ? Object.create(null) : {};
  for (const key of Object.keys(value)) {
    const v = cloneDecoded((value as Record<string, unknown>)[key]);
    // A `__proto__` key is data (as the decoder keeps it), never the prototype.
    if (key === '__proto__') {
      Object.defineProperty(out, key, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else out[key] = v;
  }
  return out as T;
}

function isPrimitive(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && typeof value !== 'function');
}

/**
 * Makes copies of one decoded message for fan-out. A plain message whose values are all
 * primitives (the usual shape: a type, ids, text) is copied by a spread, several times faster
 * than cloneDecoded's walk; any other by cloneDecoded. (Spread too keeps a `__proto__` key as
 * data.)
 */
export function copier<T extends object>(value: T): () => T {
  if (Object.getPrototypeOf(value) === Object.prototype && Object.values(value).every(isPrimitive))
    return () => ({ ...value });
  return () => cloneDecoded(value);
}
