/** Builds the Crypter for a layer's `symmetricEncryptionKeys` / `encryption` options. */
import { ConfigurationError } from '../errors.ts';
import { Fernet } from './fernet.ts';
import { Secretbox } from './secretbox.ts';
import type { Crypter } from './types.ts';

export type EncryptionName = 'fernet' | 'secretbox';
export const ENCRYPTIONS: readonly EncryptionName[] = ['fernet', 'secretbox'];

export interface CrypterOptions {
  /** Secrets; the first encrypts, every one is tried to decrypt (rotation). */
  keys: readonly string[];
  /** Default 'fernet' (channels_redis-compatible). */
  encryption?: EncryptionName;
  /** Fernet only: refuse tokens older than this many seconds (channels_redis: expiry + 10). */
  ttlSeconds?: number;
}

/**
 * Validates the options and returns a Crypter. Throws ConfigurationError for anything wrong.
 * Error messages describe key *positions and types* only, never key contents.
 */
export function createCrypter(opts: CrypterOptions): Crypter {
  // Options may come from JSON (a pasted Django config), so check at runtime what TS promises.
  const { keys, encryption = 'fernet', ttlSeconds } = opts ?? ({} as Partial<CrypterOptions>);
  if (typeof keys === 'string') {
    // channels_redis raises the same way: a bare string would otherwise be treated as a list of chars.
    throw new ConfigurationError('symmetricEncryptionKeys must be a list of secrets, not a string');
  }
  if (!Array.isArray(keys)) {
    throw new ConfigurationError(
      `symmetricEncryptionKeys must be a list of secrets, got ${describe(keys)}`,
    );
  }
  if (keys.length === 0) {
    throw new ConfigurationError('symmetricEncryptionKeys must hold at least one secret');
  }
  keys.forEach((key: unknown, i: number) => {
    if (typeof key !== 'string') {
      throw new ConfigurationError(
        `symmetricEncryptionKeys[${i}] must be a string, got ${describe(key)}`,
      );
    }
    if (key.length === 0) {
      // Almost always an unset environment variable; an empty secret is no secret.
      throw new ConfigurationError(`symmetricEncryptionKeys[${i}] is an empty string`);
    }
  });
  if (
    ttlSeconds !== undefined &&
    (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds < 0)
  ) {
    throw new ConfigurationError(
      `ttlSeconds must be a non-negative number, got ${typeof ttlSeconds === 'number' ? ttlSeconds : describe(ttlSeconds)}`,
    );
  }
  switch (encryption) {
    case 'fernet':
      return new Fernet(keys, ttlSeconds);
    case 'secretbox':
      return new Secretbox(keys);
    default:
      throw new ConfigurationError(
        `Unknown encryption ${typeof encryption === 'string' ? JSON.stringify(encryption) : describe(encryption)}; expected one of ${ENCRYPTIONS.join(', ')}`,
      );
  }
}

/** A type description safe to print: never the value of something that might be a key. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return value.constructor?.name ?? 'an object';
  return typeof value;
}
