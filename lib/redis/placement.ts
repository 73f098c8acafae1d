/**
 * Which shard a name lives on.
 * - `crc32`: channels_redis's placement, so both sides find the same keys:
 *   `floor((crc32(utf8(name)) & 0xFFF) / (4096 / n))`, 0 for one host.
 * - `ring`: a ketama-style consistent-hash ring over the host identities, so adding a host
 *   moves only ~1/n of the names (Node-only deployments; channels_redis can't follow it).
 * A 60-line ring with its own tests beats the npm options: `hash-ring` is broken and
 * `hashring` unmaintained since 2015.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';

export interface Placement {
  readonly size: number;
  index(name: string): number;
}

export function crc32Placement(size: number): Placement {
  const divisor = 4096 / size;
  return {
    size,
    index: (name) => (size === 1 ? 0 : Math.floor((crc32(name) & 0xfff) / divisor)),
  };
}

/** Points per host: enough that the share of each host stays within a few percent. */
const POINTS_PER_HOST = 160;

function md5Words(text: string): number[] {
  const d = createHash('md5').update(text).digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4), d.readUInt32LE(8), d.readUInt32LE(12)];
}

export function ringPlacement(hostIds: readonly string[]): Placement {
  const points: Array<[number, number]> = [];
  hostIds.forEach((id, host) => {
    for (let i = 0; i < POINTS_PER_HOST / 4; i++) {
      for (const word of md5Words(`${id}-${i}`)) points.push([word, host]);
    }
  });
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const hashes = Uint32Array.from(points, (p) => p[0]);
  const owners = Uint16Array.from(points, (p) => p[1]);
  return {
    size: hostIds.length,
    index(name) {
      if (hostIds.length === 1) return 0;
      const h = md5Words(name)[0]!;
      let lo = 0;
      let hi = hashes.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (hashes[mid]! < h) lo = mid + 1;
        else hi = mid;
      }
      return owners[lo === hashes.length ? 0 : lo]!;
    },
  };
}
