/** Named serializers: the built-in `msgpack` and `json`, plus any the application registers. */
import { ConfigurationError } from '../errors.ts';
import { jsonSerializer } from './json.ts';
import { msgpackSerializer } from './msgpack.ts';
import type { Serializer } from './types.ts';

const serializers = new Map<string, Serializer>([
  ['msgpack', msgpackSerializer],
  ['json', jsonSerializer],
]);

export function registerSerializer(name: string, impl: Serializer): void {
  if (typeof name !== 'string' || name === '') {
    throw new ConfigurationError('registerSerializer needs a non-empty name');
  }
  if (typeof impl?.serialize !== 'function' || typeof impl?.deserialize !== 'function') {
    throw new ConfigurationError(`Serializer "${name}" must have serialize() and deserialize()`);
  }
  serializers.set(name, impl);
}

export function getSerializer(name: string): Serializer {
  const found = serializers.get(name);
  if (!found) {
    const known = [...serializers.keys()].join(', ');
    throw new ConfigurationError(`Unknown serializerFormat "${name}" (known: ${known})`);
  }
  return found;
}
