/**
 * `health()` of the Redis layers: per shard a PING round trip and the server's role, asked with
 * commands every user may run (PING, HELLO: no `@dangerous` INFO or ROLE, so the least-privilege
 * ACL user of the README works), each shard bounded by `commandTimeoutMs`. Never rejects: a
 * shard that cannot answer is `ok: false` with the reason.
 */
import type { Redis } from 'ioredis';
import { deadline } from '../deadline.ts';
import { errorMessage } from '../errors.ts';
import { serverHello } from './hello.ts';
import type { Shard } from './shard.ts';

export interface ShardHealth {
  /** The shard's index in `hosts`. */
  shard: number;
  /** Its address (or Sentinel group), without credentials. */
  id: string;
  /** Sentinel shards: the master name the sentinels are asked for. */
  masterName?: string;
  /** Answered PING, and is a master (a replica cannot take writes). */
  ok: boolean;
  /** PING round trip in ms, when it answered. */
  latencyMs: number | undefined;
  role: 'master' | 'replica' | undefined;
  /** Why it is not ok. */
  error?: string;
}

/**
 * The reader: the core layer's blocking read loop, the Pub/Sub layer's subscriber connections.
 * `'idle'`: not started (nothing received yet), `'reconnecting'`: a connection is down.
 */
export type ReaderState = 'idle' | 'running' | 'reconnecting' | 'stopped';

export interface HealthReport {
  /** Every shard ok and the layer open. */
  ok: boolean;
  shards: ShardHealth[];
  reader: ReaderState;
  /** How long the longest-waiting receive has waited (ms); undefined when none waits. */
  oldestWaitMs: number | undefined;
}

/** The report of a Redis layer from its servers' health: ok when all are and it is open. */
export function healthReport(
  shards: ShardHealth[],
  layer: { closed: boolean; reader: ReaderState; oldestWaitMs: number | undefined },
): HealthReport {
  return {
    ok: !layer.closed && shards.every((s) => s.ok),
    shards,
    reader: layer.reader,
    oldestWaitMs: layer.oldestWaitMs,
  };
}

/** One shard's health, within `timeoutMs` (connecting it first if it is lazy). */
export function shardHealth(shard: Shard, timeoutMs: number): Promise<ShardHealth> {
  const masterName = shard.spec.options.sentinels?.length ? shard.spec.options.name : undefined;
  const base = { shard: shard.index, id: shard.spec.id, ...(masterName ? { masterName } : {}) };
  return serverHealth(
    base,
    async () => {
      await shard.whenReady(timeoutMs);
      return shard.client;
    },
    timeoutMs,
  );
}

/**
 * One server's health (`client()` gives a connection to it), within `timeoutMs`: ok when it
 * answers PING and is a master.
 */
export async function serverHealth(
  base: Pick<ShardHealth, 'shard' | 'id' | 'masterName'>,
  client: () => Promise<Redis>,
  timeoutMs: number,
): Promise<ShardHealth> {
  try {
    const { latencyMs, role } = await deadline(
      client().then(probe),
      timeoutMs,
      () => new Error(`no answer within ${timeoutMs} ms`),
    );
    if (role !== 'master')
      return {
        ...base,
        ok: false,
        latencyMs,
        role,
        error: `the server is a ${role ?? 'server of unknown role'}`,
      };
    return { ...base, ok: true, latencyMs, role };
  } catch (err) {
    return { ...base, ok: false, latencyMs: undefined, role: undefined, error: errorMessage(err) };
  }
}

async function probe(client: Redis): Promise<{ latencyMs: number; role: ShardHealth['role'] }> {
  const started = performance.now();
  await client.ping();
  const latencyMs = Math.round((performance.now() - started) * 1000) / 1000;
  const { role } = await serverHello(client);
  return {
    latencyMs,
    role: role === 'master' ? 'master' : role === 'slave' ? 'replica' : undefined,
  };
}
