/**
 * Redis's own ceilings, measured with `redis-benchmark` against the same server the layers
 * use: what one client can get through Redis for the work a send does, with and without
 * pipelining, plus PING latency and PUBLISH throughput.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { redisCommand } from './servers.ts';
import type { ScenarioResult } from './types.ts';

const run = promisify(execFile);

export const CEILINGS = ['evalsha-1', 'evalsha-50x16', 'ping', 'publish-50x16'] as const;
export type CeilingId = (typeof CEILINGS)[number];

/**
 * A core send in one script: what channels_redis 4.0 does in four round trips (drop expired,
 * capacity check, add, refresh expiry). ARGV: member, expiry cutoff, capacity, score.
 */
export const SEND_SCRIPT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[2])
if redis.call('ZCOUNT', KEYS[1], '-inf', '+inf') >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[1], 60)
return 1`;

/**
 * About the size of a bench message on the wire (12-byte random prefix + ~130 bytes of
 * msgpack). `__rand_int__` (with -r 50) makes 50 distinct members, so the set stays small and
 * every call does the full add path.
 */
const MEMBER = `m__rand_int__${'x'.repeat(128)}`;

/** Requests per run: a rough rate × the duration knob (redis-benchmark counts, not times). */
const RATE_GUESS: Record<CeilingId, number> = {
  'evalsha-1': 12_000,
  'evalsha-50x16': 120_000,
  ping: 15_000,
  'publish-50x16': 500_000,
};

export interface CeilingOptions {
  port: number;
  seconds: number;
  /** Command prefix for CPU pinning, e.g. ['taskset', '-c', '1']. */
  pin: string[];
}

interface CsvRow {
  test: string;
  rps: number;
  p50: number;
  p99: number;
}

/** Parses `redis-benchmark --csv`: a header line, then one quoted row per test. */
export function parseCsv(text: string): CsvRow[] {
  const rows = text
    .trim()
    .split('\n')
    .map((line) => [...line.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!.replace(/""/g, '"')));
  const header = rows.shift() ?? [];
  const col = (name: string): number => header.indexOf(name);
  return rows.map((r) => ({
    test: r[col('test')] ?? '',
    rps: Number(r[col('rps')]),
    p50: Number(r[col('p50_latency_ms')]),
    p99: Number(r[col('p99_latency_ms')]),
  }));
}

async function benchmark(o: CeilingOptions, args: string[]): Promise<CsvRow[]> {
  const cmd = [...o.pin, 'redis-benchmark', '-h', '127.0.0.1', '-p', String(o.port), '--csv'];
  const { stdout } = await run(cmd[0]!, [...cmd.slice(1), ...args], {
    maxBuffer: 1 << 20,
    timeout: 120_000,
  });
  const rows = parseCsv(stdout);
  if (rows.length === 0) throw new Error(`redis-benchmark printed nothing usable: ${stdout}`);
  return rows;
}

/**
 * A subscriber that reads and drops everything, so PUBLISH does the full fan-out work (a
 * channel nobody listens on costs Redis almost nothing). A raw socket keeps its CPU cost tiny;
 * it counts bytes so the run can check every message reached it (Redis disconnects a
 * subscriber that falls too far behind, which would make PUBLISH look cheaper than it is).
 */
async function sink(
  port: number,
  channel: string,
): Promise<{ bytes: () => number; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('data', () => resolve()); // the subscribe confirmation, not counted
    socket.write(`*2\r\n$9\r\nSUBSCRIBE\r\n$${channel.length}\r\n${channel}\r\n`);
  });
  let bytes = 0;
  socket.on('data', (d: Buffer) => (bytes += d.length));
  socket.on('error', () => {});
  return { bytes: () => bytes, socket };
}

/** Bytes of one pushed `message` frame: *3, "message", the channel, the payload. */
const frameBytes = (channel: string, payload: string): number =>
  `*3\r\n$7\r\nmessage\r\n$${channel.length}\r\n${channel}\r\n$${payload.length}\r\n${payload}\r\n`
    .length;

export async function runCeiling(id: CeilingId, o: CeilingOptions): Promise<ScenarioResult> {
  const n = String(Math.max(1000, Math.round(RATE_GUESS[id] * o.seconds)));
  switch (id) {
    case 'evalsha-1':
    case 'evalsha-50x16': {
      const sha = String(await redisCommand(o.port, ['SCRIPT', 'LOAD', SEND_SCRIPT]));
      const [c, p] = id === 'evalsha-1' ? ['1', '1'] : ['50', '16'];
      const script = ['EVALSHA', sha, '1', 'asgibench.ceiling', MEMBER, '0', '100', '1e9'];
      const [row] = await benchmark(o, ['-c', c, '-P', p, '-n', n, '-r', '50', ...script]);
      return { metrics: { throughput: row!.rps }, info: { clients: c, pipeline: p, n } };
    }
    case 'ping': {
      // One client, unpipelined: the latency floor of a round trip to this server.
      const rows = await benchmark(o, ['-c', '1', '-n', n, '-t', 'ping']);
      const row = rows.find((r) => r.test === 'PING_MBULK') ?? rows[0]!;
      return { metrics: { p50: row.p50, p99: row.p99 }, info: { test: row.test, n } };
    }
    case 'publish-50x16': {
      const channel = 'bench.ceiling.pub';
      const payload = 'x'.repeat(142);
      const sub = await sink(o.port, channel);
      try {
        const args = ['-c', '50', '-P', '16', '-n', n, 'PUBLISH', channel, payload];
        const [row] = await benchmark(o, args);
        // Let the subscriber catch up with what Redis still buffers for it, then check.
        const want = Number(n) * frameBytes(channel, payload);
        for (let i = 0; i < 100 && sub.bytes() < want && !sub.socket.destroyed; i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        if (sub.bytes() < want) {
          throw new Error(`subscriber got ${sub.bytes()} of ${want} bytes (dropped by Redis?)`);
        }
        return { metrics: { throughput: row!.rps }, info: { subscribers: 1, n } };
      } finally {
        sub.socket.destroy();
      }
    }
  }
}
