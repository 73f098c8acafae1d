/**
 * The core layer's random prefix (docs/wire-protocol.md): every sorted-set member starts with N random bytes
 * so two equal messages stay two members. Bytes come from a pooled CSPRNG fill, not one syscall
 * per message.
 */
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 8192;
let pool = Buffer.allocUnsafe(0);
let offset = 0;

export function frame(body: Uint8Array, prefixLength: number): Buffer {
  if (offset + prefixLength > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(Math.max(POOL_SIZE, prefixLength)));
    offset = 0;
  }
  const out = Buffer.allocUnsafe(prefixLength + body.byteLength);
  pool.copy(out, 0, offset, offset + prefixLength);
  offset += prefixLength;
  out.set(body, prefixLength);
  return out;
}

export function unframe(payload: Uint8Array, prefixLength: number): Uint8Array {
  return payload.subarray(prefixLength);
}
