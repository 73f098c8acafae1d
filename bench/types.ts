/** Shapes shared by the orchestrator, the chanlayer worker and (as JSON) the Python bench. */

/** Every scenario a client runs. Python implements the same ids (see channels_redis_bench.py). */
export const SCENARIOS = [
  'core-seq',
  'core-inflight',
  'core-local',
  'core-pingpong',
  'core-group',
  'core-group-big',
  'pubsub-inflight',
  'pubsub-pingpong',
  'core-memory',
  'pubsub-memory',
  'core-pingpong-2proc',
  'core-pingpong-2layer',
  'pubsub-pingpong-2proc',
  'pubsub-pingpong-2layer',
  'core-newkey',
  // chanlayer only: groupSend to members spread over many slots (3 hosts against a cluster).
  'core-group-slots',
  'core-group-big-slots',
] as const;
export type ScenarioId = (typeof SCENARIOS)[number];

/**
 * A shard a client run uses: a `redis://` URL, or the `{ cluster }` hosts entry of a Redis
 * Cluster (chanlayer only; the bench's cluster has masters only, slots split evenly in order:
 * bench/servers.ts).
 */
export type BenchHost = string | { cluster: [string, number][] };

/** What the orchestrator hands a client run (passed as one JSON argument to both languages). */
export interface ScenarioParams {
  scenario: ScenarioId;
  /** The shards this run uses: 1 or 3 `redis://` URLs, or one cluster entry. */
  hosts: BenchHost[];
  /** Seconds of measurement for the streaming and ping-pong scenarios. */
  duration: number;
  /** Seconds run and thrown away first (connections, JIT, caches). */
  warmup: number;
  /** Measured `groupSend` rounds (after `warmupIterations`). */
  iterations: number;
  warmupIterations: number;
  /** Concurrent `send` calls in the `*-inflight` scenarios. */
  inflight: number;
  groupSize: number;
  bigGroupSize: number;
  memoryChannels: number;
  /** A receiver that makes no progress for this long gives up (lost messages, broken layer). */
  stallSeconds: number;
  /** Run the scenario against the bare client of bench/bare/ instead of a layer. */
  bare?: boolean;
  /** chanlayer only: run against InMemoryChannelLayer (a self-test of the harness). */
  inMemory?: boolean;
  /** chanlayer only: `file:` URL of the lib/index.ts to load (the run's snapshot). */
  lib?: string;
}

/**
 * One client run's figures. Metric names: `throughput` (msg/s), `p50`/`p99`/`time` (ms),
 * `heapMB`. `info` carries counts and layer stats for the JSON file only.
 */
export interface ScenarioResult {
  metrics: Record<string, number>;
  info?: Record<string, unknown>;
  /** Added by the orchestrator: what the Redis servers did during the run (servers.ts). */
  redis?: { calls: Record<string, number>; cpuMs: number };
}

/** The message every scenario sends, in both languages: about 130 bytes of msgpack. */
export const PAYLOAD = 'x'.repeat(100);

/**
 * What the pinger of a `*-pingpong-2proc` run passes its ponger process (bench/ponger.ts,
 * or channels_redis_bench.py with `replyTo` set), as one JSON argument.
 */
export interface PongerParams {
  kind: 'core' | 'pubsub';
  hosts: BenchHost[];
  /** The pinger's channel: every message is echoed there. */
  replyTo: string;
  stallSeconds: number;
  inMemory?: boolean;
  lib?: string;
  /** Pub/Sub only: echo with the bare client (bench/bare/) instead of a layer. */
  bare?: boolean;
}

/** Prefix of the stdout line a ponger process names its channel on (both languages). */
export const PONGER_READY = 'PONGER_READY ';

/** Prefix of the one stdout line a client run reports its result on (both languages). */
export const RESULT_MARK = 'BENCH_RESULT ';
