/**
 * A reader's wake key: a sorted set under the layer's prefix that every BZPOPMIN of the reader
 * includes, and that the command connection writes one member to (wake.lua) when a receiver
 * starts waiting on a key the block in progress lacks. Unlike `CLIENT UNBLOCK` (`@dangerous`:
 * not allowed to a least-privilege ACL user) it needs no client id, and a wake that arrives
 * before the block does is not lost: the member stays until the next block pops it.
 */
import type { Redis } from 'ioredis';
import { wakeScript } from './script-calls.ts';

/** How long a wake nobody popped stays (a process that died leaves its key this long at most). */
const WAKE_TTL_MS = 30_000;

/**
 * The wake key of reader `readerId` (unique per layer instance). Channel names never contain
 * ':', so no channel or group key (`prefix:group:…`) is ever this. The one place it is built:
 * a Redis Cluster reader would add a hash tag here to put it in the slot of the keys it blocks on.
 */
export function wakeKey(prefix: string, readerId: string): string {
  return `${prefix}:wake:${readerId}`;
}

/** Wakes the reader blocked on (or about to block on) `key`. */
export function wake(client: Redis, key: string): Promise<void> {
  return wakeScript(client, key, WAKE_TTL_MS);
}
