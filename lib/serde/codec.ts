/**
 * Message ⇄ payload: validate → serialize → size check → encrypt → random prefix, and back.
 * Each layer owns one Codec; the core layer frames (12-byte prefix), Pub/Sub does not.
 */
import { MessageTooLarge, UnreadablePayload } from '../errors.ts';
import { frame, unframe } from './framing.ts';
import { describe, isPlainObject } from './paths.ts';
import type { Crypter, Serializer } from './types.ts';

export const CHANNEL_FIELD = '__asgi_channel__';

export interface CodecOptions {
  serializer: Serializer;
  crypter?: Crypter | undefined;
  /** Random bytes before the body (WIRE.md); 0 for none. */
  prefixLength: number;
  maxMessageBytes: number;
}

/** A user message must be a plain object and must not use the routing field. */
export function assertMessage(message: unknown): asserts message is Record<string, unknown> {
  if (message === null || typeof message !== 'object' || !isPlainObject(message)) {
    throw new TypeError(
      `message must be a plain object, got ${message === null ? 'null' : describe(message)}`,
    );
  }
  if (Object.hasOwn(message, CHANNEL_FIELD)) {
    throw new TypeError(`message must not contain the reserved key "${CHANNEL_FIELD}"`);
  }
}

export class Codec {
  readonly serializer: Serializer;
  readonly crypter: Crypter | undefined;
  readonly prefixLength: number;
  readonly maxMessageBytes: number;

  constructor(opts: CodecOptions) {
    this.serializer = opts.serializer;
    this.crypter = opts.crypter;
    this.prefixLength = opts.prefixLength;
    this.maxMessageBytes = opts.maxMessageBytes;
  }

  /** Throws TypeError (unsupported value, with its path) or MessageTooLarge. */
  encode(message: Record<string, unknown>): Buffer {
    const body = this.serializer.serialize(message);
    if (body.byteLength > this.maxMessageBytes) {
      throw new MessageTooLarge(body.byteLength, this.maxMessageBytes);
    }
    const sealed = this.crypter ? this.crypter.encrypt(body) : body;
    if (this.prefixLength > 0) return frame(sealed, this.prefixLength);
    return Buffer.isBuffer(sealed)
      ? sealed
      : Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  }

  /** Throws UnreadablePayload for anything that is not a message this codec wrote. */
  decode(payload: Uint8Array): Record<string, unknown> {
    let value: unknown;
    try {
      const sealed = this.prefixLength > 0 ? unframe(payload, this.prefixLength) : payload;
      value = this.serializer.deserialize(this.crypter ? this.crypter.decrypt(sealed) : sealed);
    } catch (err) {
      if (err instanceof UnreadablePayload) throw err;
      throw new UnreadablePayload(`cannot decode payload: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new UnreadablePayload('payload is not a message (not a map)');
    }
    return value as Record<string, unknown>;
  }
}
