/**
 * Message ⇄ payload: validate → serialize → size check → encrypt → random prefix, and back.
 * Each layer owns one Codec; the core layer frames (12-byte prefix), Pub/Sub does not.
 */
import { MessageTooLarge, UnreadablePayload } from '../errors.ts';
import { frame, unframe } from './framing.ts';
import { msgpackSerializer, withStringArray } from './msgpack.ts';
import { describe, isPlainObject } from './paths.ts';
import type { Crypter, Serializer } from './types.ts';

export const CHANNEL_FIELD = '__asgi_channel__';

export interface CodecOptions {
  serializer: Serializer;
  crypter?: Crypter | undefined;
  /** Random bytes before the body (docs/wire-protocol.md); 0 for none. */
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
    return this.seal(this.serializer.serialize(message));
  }

  /**
   * A group message's encoder: `message` is checked (TypeError, MessageTooLarge) first; each
   * call then gives the payload for one channel key, `__asgi_channel__` listing `channels`
   * (names as UTF-8 bytes, as Redis returns them). With msgpack the message is serialized once
   * and the names written in as bytes: no string made and encoded per name (1,000s per
   * groupSend). Other serializers encode the message again per key.
   */
  groupEncoder(message: Record<string, unknown>): (channels: readonly Buffer[]) => Buffer {
    const body = this.serializer.serialize(message);
    this.checkSize(body);
    if (this.serializer === msgpackSerializer) {
      return (channels) => this.seal(withStringArray(body, CHANNEL_FIELD, channels));
    }
    return (channels) =>
      this.encode({ ...message, [CHANNEL_FIELD]: channels.map((c) => c.toString()) });
  }

  private checkSize(body: Uint8Array): void {
    if (body.byteLength > this.maxMessageBytes) {
      throw new MessageTooLarge(body.byteLength, this.maxMessageBytes);
    }
  }

  /** A serialized body as a payload: size check, encryption, random prefix. */
  private seal(body: Uint8Array): Buffer {
    this.checkSize(body);
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
