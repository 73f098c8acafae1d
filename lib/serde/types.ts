/** Seams of the serialization pipeline: message ⇄ bytes (Serializer), bytes ⇄ token (Crypter). */

export interface Serializer {
  readonly name: string;
  /** Throws `TypeError` naming the path of a value the format cannot carry. */
  serialize(message: Record<string, unknown>): Uint8Array;
  /** Throws on malformed input; callers turn that into a skipped, counted payload. */
  deserialize(bytes: Uint8Array): unknown;
}

export interface Crypter {
  encrypt(plain: Uint8Array): Uint8Array;
  /** Throws `UnreadablePayload` when no key opens the token (or its TTL has passed). */
  decrypt(token: Uint8Array): Uint8Array;
}
