/**
 * UTF-8 JSON, as channels_redis's `serializer_format: "json"` writes it. JSON cannot carry
 * bytes, bigints or non-finite numbers, so those are refused up front with their path instead
 * of being silently turned into something else by `JSON.stringify`.
 */
import { describe, isPlainObject, unsupportedValue, type PathStep } from './paths.ts';
import type { Serializer } from './types.ts';

function check(value: unknown, path: PathStep[], ancestors: object[]): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw unsupportedValue(path, `${value} (not valid JSON)`);
      return;
    case 'object': {
      if (value === null) return;
      if (ancestors.includes(value)) throw unsupportedValue(path, 'a reference cycle');
      const isArray = Array.isArray(value);
      if (!isArray && !isPlainObject(value)) {
        throw unsupportedValue(path, `${describe(value)} (not valid JSON)`);
      }
      ancestors.push(value);
      const entries: [PathStep, unknown][] = isArray
        ? value.map((v, i) => [i, v])
        : Object.entries(value);
      for (const [step, child] of entries) {
        path.push(step);
        check(child, path, ancestors);
        path.pop();
      }
      ancestors.pop();
      return;
    }
    default:
      throw unsupportedValue(path, `${describe(value)} (not valid JSON)`);
  }
}

export const jsonSerializer: Serializer = {
  name: 'json',
  serialize(message) {
    check(message, [], []);
    return Buffer.from(JSON.stringify(message), 'utf8');
  },
  deserialize(bytes) {
    return JSON.parse(
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
    );
  },
};
