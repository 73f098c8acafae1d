/**
 * Fernet, byte-for-byte as Python's `cryptography.fernet` (what channels_redis uses for
 * `symmetric_encryption_keys`), with MultiFernet-style key rotation.
 *
 * Token = urlsafe-base64, padded with '=' (as cryptography emits), of
 *   0x80 | u64be timestamp (Unix seconds) | 16-byte IV | AES-128-CBC/PKCS7 ciphertext | HMAC-SHA256
 * where the HMAC covers every byte before it. Decrypting accepts padded and unpadded tokens.
 *
 * Key per secret (channels_redis `make_fernet`): the Fernet key is base64url(sha256(utf8(secret))),
 * i.e. the raw 32 bytes are sha256(secret): bytes 0–15 sign, bytes 16–31 encrypt.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  randomFillSync,
  timingSafeEqual,
} from 'node:crypto';
import { UnreadablePayload } from '../errors.ts';
import type { Crypter } from './types.ts';

const VERSION = 0x80;
const HEADER = 25; // version (1) + timestamp (8) + IV (16)
const MAC = 32;
const BLOCK = 16;
/** cryptography's `_MAX_CLOCK_SKEW`: tokens stamped further than this in the future are refused. */
export const MAX_CLOCK_SKEW = 60;

interface FernetKey {
  readonly signing: Buffer;
  readonly encryption: Buffer;
}

/** channels_redis key derivation: sha256 of the UTF-8 secret, split into signing | encryption key. */
export function deriveFernetKey(secret: string): FernetKey {
  const digest = createHash('sha256').update(secret, 'utf8').digest();
  return { signing: digest.subarray(0, 16), encryption: digest.subarray(16, 32) };
}

/**
 * IVs come from a pooled CSPRNG buffer: one randomFillSync call costs about as much as the whole
 * AES pass for a small message, so we fetch 4 KiB at a time (the same trick as crypto.randomUUID).
 */
const ivPool = Buffer.allocUnsafe(4096);
let ivOffset = ivPool.length;
function nextIv(): Buffer {
  if (ivOffset + BLOCK > ivPool.length) {
    randomFillSync(ivPool);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + BLOCK);
  ivOffset += BLOCK;
  return iv;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function unreadable(reason: string): UnreadablePayload {
  return new UnreadablePayload(`Fernet token rejected: ${reason}`);
}

export class Fernet implements Crypter {
  readonly #keys: readonly FernetKey[];
  readonly #ttl: number | undefined;

  /**
   * @param secrets first one encrypts; all are tried, in order, to decrypt (rotation).
   * @param ttlSeconds if set, decrypt refuses tokens older than this (channels_redis passes
   *   `expiry + 10`) or stamped more than MAX_CLOCK_SKEW seconds in the future.
   */
  constructor(secrets: readonly string[], ttlSeconds?: number) {
    if (secrets.length === 0) throw new RangeError('Fernet needs at least one secret');
    this.#keys = secrets.map(deriveFernetKey);
    this.#ttl = ttlSeconds;
  }

  encrypt(plain: Uint8Array): Buffer {
    // int(time.time()) in Python truncates; for positive times that is Math.floor.
    return this.encryptAt(plain, Math.floor(Date.now() / 1000), nextIv());
  }

  /** Deterministic encryption for tests and golden vectors (cryptography's `_encrypt_from_parts`). */
  encryptAt(plain: Uint8Array, timeSeconds: number, iv: Uint8Array): Buffer {
    if (!Number.isSafeInteger(timeSeconds) || timeSeconds < 0) {
      throw new RangeError('Fernet timestamp must be a non-negative safe integer');
    }
    if (iv.length !== BLOCK) throw new RangeError('Fernet IV must be 16 bytes');
    const key = this.#keys[0]!;
    // PKCS7 always adds 1..16 bytes, so the ciphertext length is known up front and the whole
    // token is assembled in one allocation.
    const cipherLen = (plain.length & ~(BLOCK - 1)) + BLOCK;
    const rawLen = HEADER + cipherLen + MAC;
    const raw = Buffer.allocUnsafe(rawLen);
    raw[0] = VERSION;
    raw.writeUInt32BE(Math.floor(timeSeconds / 2 ** 32), 1);
    raw.writeUInt32BE(timeSeconds % 2 ** 32, 5);
    raw.set(iv, 9);
    const cipher = createCipheriv('aes-128-cbc', key.encryption, iv);
    const head = cipher.update(plain);
    head.copy(raw, HEADER);
    cipher.final().copy(raw, HEADER + head.length);
    createHmac('sha256', key.signing)
      .update(raw.subarray(0, rawLen - MAC))
      .digest()
      .copy(raw, rawLen - MAC);
    return base64urlPadded(raw);
  }

  decrypt(token: Uint8Array): Buffer {
    return this.decryptAt(token, Math.floor(Date.now() / 1000));
  }

  /** `decrypt` as if the clock read `nowSeconds` (cryptography's `decrypt_at_time`). */
  decryptAt(token: Uint8Array, nowSeconds: number): Buffer {
    // Node's base64 decoder takes both alphabets, with or without '=' padding. Anything it
    // silently skips changes the decoded bytes, so the HMAC still catches it.
    const raw = Buffer.from(asBuffer(token).toString('latin1'), 'base64url');
    const cipherLen = raw.length - HEADER - MAC;
    if (raw[0] !== VERSION) throw unreadable('not a Fernet token');
    if (cipherLen < BLOCK || cipherLen % BLOCK !== 0) throw unreadable('malformed token');

    const signed = raw.subarray(0, raw.length - MAC);
    const mac = raw.subarray(raw.length - MAC);
    const key = this.#keys.find((k) =>
      timingSafeEqual(createHmac('sha256', k.signing).update(signed).digest(), mac),
    );
    if (key === undefined) throw unreadable(`no key matched (tried ${this.#keys.length})`);

    if (this.#ttl !== undefined) {
      // The timestamp is authentic now. Read it as two 32-bit halves: beyond 2^53 it loses
      // precision, which cannot flip either comparison against a real clock.
      const stamp = raw.readUInt32BE(1) * 2 ** 32 + raw.readUInt32BE(5);
      // cryptography's exact rules (fernet.py `_decrypt_data`).
      if (stamp + this.#ttl < nowSeconds) throw unreadable(`expired (ttl ${this.#ttl}s)`);
      if (nowSeconds + MAX_CLOCK_SKEW < stamp) throw unreadable('timestamp is in the future');
    }

    // Padding is checked by hand so the plaintext is one buffer (no concat of update + final).
    // No padding oracle: an attacker cannot get here without a valid HMAC.
    const decipher = createDecipheriv('aes-128-cbc', key.encryption, raw.subarray(9, HEADER));
    decipher.setAutoPadding(false);
    const padded = decipher.update(raw.subarray(HEADER, HEADER + cipherLen));
    decipher.final();
    const pad = padded[padded.length - 1]!;
    let ok = pad >= 1 && pad <= BLOCK;
    for (let i = padded.length - pad; ok && i < padded.length; i++) ok = padded[i] === pad;
    if (!ok) throw unreadable('bad padding');
    return padded.subarray(0, padded.length - pad);
  }
}

/** urlsafe base64 with '=' padding, as ASCII bytes (what channels_redis stores). */
function base64urlPadded(raw: Buffer): Buffer {
  const size = Math.ceil(raw.length / 3) * 4;
  const out = Buffer.allocUnsafe(size);
  const written = out.write(raw.toString('base64url'), 0, 'latin1');
  return written === size ? out : out.fill(0x3d /* '=' */, written);
}
