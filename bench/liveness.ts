/**
 * What liveness (issue 18 part 1) costs, liveness on against off in the same run, on a private
 * redis-server:
 *
 * - `groupSend` to 100 live members (10 registered processes × 10 channels): latency (p50/p99 of
 *   the call, blocks of on and off interleaved) and Redis commands per call (INFO commandstats);
 * - `groupSend` to a group holding 200 dead processes (one channel each) and one live member:
 *   with liveness off every send writes 200 dead queues, with it on the first send removes them;
 * - idle processes (a channel and a waiting receive each, default heartbeat): Redis commands per
 *   second per process.
 *
 *   npm run bench:liveness            (about 1 minute)
 *   npm run bench:liveness -- --quick (a few seconds: a smoke run, figures not meaningful)
 */
import { Redis, type Command } from 'ioredis';
import { RedisChannelLayer, type LayerOptions } from '../lib/index.ts';
import { startServers } from './servers.ts';
import { percentileSorted } from './stats.ts';

const quick = process.argv.includes('--quick');
const SENDS = quick ? 200 : 2000;
const BLOCKS = quick ? 2 : 6;
const IDLE_PROCESSES = 20;
const IDLE_SECONDS = quick ? 2 : 20;
/** Short periods, so the dead processes of the second part are dead within a second. */
const FAST = { heartbeatMs: 100, deadAfterMs: 500 };
const GROUP = 'bench.live';

const servers = await startServers(1);
const layers: RedisChannelLayer[] = [];
function layer(options: LayerOptions): RedisChannelLayer {
  const made = new RedisChannelLayer({ hosts: servers.urls, capacity: 1_000_000, ...options });
  layers.push(made);
  return made;
}

/**
 * Commands the layers of this process send, by name: ioredis's sendCommand sees every one
 * (auto-pipelined, written directly, scripts as one EVALSHA), not the ones a script runs.
 */
const sentCommands = new Map<string, number>();
const sendCommand = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (this: Redis, command: Command, ...rest: unknown[]) {
  sentCommands.set(command.name, (sentCommands.get(command.name) ?? 0) + 1);
  return (sendCommand as (...args: unknown[]) => unknown).call(this, command, ...rest);
} as typeof Redis.prototype.sendCommand;

/** Commands sent during `work`, in all. */
async function counting(work: () => Promise<void>): Promise<number> {
  sentCommands.clear();
  await work();
  let n = 0;
  for (const count of sentCommands.values()) n += count;
  return n;
}

async function timedSends(sender: RedisChannelLayer, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await sender.groupSend(GROUP, { type: 'bench', i });
    times.push(performance.now() - t0);
  }
  return times;
}

const ms = (v: number): string => v.toFixed(3);

/** Keys matching `pattern` on the server (SCAN). */
async function countKeys(pattern: string): Promise<number> {
  const client = new Redis(servers.urls[0]!);
  let n = 0;
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  client.disconnect();
  return n;
}

try {
  // --- 1. live members --------------------------------------------------------------------
  for (let p = 0; p < 10; p++) {
    const member = layer({ liveness: FAST, prefix: 'b1' });
    for (let c = 0; c < 10; c++) await member.groupAdd(GROUP, await member.newChannel());
  }
  const senders = {
    on: layer({ liveness: FAST, prefix: 'b1' }),
    off: layer({ liveness: false, prefix: 'b1' }),
  };
  await timedSends(senders.on, 200); // warm-up (JIT, connections, first heartbeat)
  await timedSends(senders.off, 200);
  const times = { on: [] as number[], off: [] as number[] };
  const perSend = { on: 0, off: 0 };
  for (let b = 0; b < BLOCKS; b++) {
    for (const mode of b % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
      let t: number[] = [];
      const sent = await counting(async () => {
        t = await timedSends(senders[mode], SENDS / BLOCKS);
      });
      times[mode].push(...t);
      perSend[mode] += sent / SENDS;
    }
  }
  const live: Record<string, { p50: number; p99: number }> = {};
  for (const mode of ['on', 'off'] as const) {
    const sorted = times[mode].sort((a, b) => a - b);
    live[mode] = { p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99) };
  }
  console.log(`groupSend, 100 live members in 10 processes, ${SENDS} sends per mode:`);
  for (const mode of ['on', 'off'] as const)
    console.log(
      `  liveness ${mode.padEnd(3)}: p50 ${ms(live[mode]!.p50)} ms, p99 ${ms(live[mode]!.p99)} ms, ` +
        `${perSend[mode].toFixed(3)} commands per groupSend (every layer's heartbeats included)`,
    );
  console.log(
    `  ratio on/off: p50 ${(live.on!.p50 / live.off!.p50).toFixed(2)}, p99 ${(live.on!.p99 / live.off!.p99).toFixed(2)}`,
  );

  // --- 2. dead processes -----------------------------------------------------------------
  const dead: Record<string, number[]> = {};
  const removed: Record<string, number> = {};
  const queues: Record<string, number> = {};
  for (const mode of ['off', 'on'] as const) {
    const prefix = `b2${mode}`;
    const alive = layer({ liveness: FAST, prefix });
    await alive.groupAdd(GROUP, await alive.newChannel());
    const ghosts = Array.from({ length: 200 }, () => layer({ liveness: FAST, prefix }));
    for (const g of ghosts) await g.groupAdd(GROUP, await g.newChannel());
    await Promise.all(ghosts.map((g) => g.close())); // no more heartbeats: dead after 500 ms
    const sender = layer({ liveness: mode === 'on' ? FAST : false, prefix });
    await sender.groupSize(GROUP); // starts its heartbeat, writes nothing
    const deadline = Date.now() + 10_000;
    if (mode === 'on')
      while ((await sender.groupSize(GROUP)) !== 1 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
    else await new Promise((r) => setTimeout(r, FAST.deadAfterMs + 2 * FAST.heartbeatMs));
    dead[mode] = (await timedSends(sender, SENDS / 4)).sort((a, b) => a - b);
    removed[mode] = sender.stats().deadRemoved;
    queues[mode] = await countKeys(`${prefix}specific.*`);
  }
  console.log(
    `groupSend, 200 dead processes (1 channel each) + 1 live member, ${SENDS / 4} sends:`,
  );
  for (const mode of ['on', 'off'] as const)
    console.log(
      `  liveness ${mode.padEnd(3)}: p50 ${ms(percentileSorted(dead[mode]!, 50))} ms, ` +
        `p99 ${ms(percentileSorted(dead[mode]!, 99))} ms, deadRemoved ${removed[mode]}, ` +
        `process queue keys in Redis after the sends: ${queues[mode]}`,
    );

  // --- 3. idle processes -----------------------------------------------------------------
  // Only the idle layers may send anything now.
  await Promise.all(layers.splice(0).map((l) => l.close()));
  const idle: Record<string, number> = {};
  for (const mode of ['off', 'on'] as const) {
    const group = Array.from({ length: IDLE_PROCESSES }, () =>
      layer({ prefix: `b3${mode}`, ...(mode === 'off' ? { liveness: false } : {}) }),
    );
    const controllers = group.map(() => new AbortController());
    const channels = await Promise.all(group.map((l) => l.newChannel()));
    const pending = group.map((l, i) =>
      l.receive(channels[i]!, { signal: controllers[i]!.signal }).catch(() => {}),
    );
    await new Promise((r) => setTimeout(r, 1000)); // settle: readers blocking, first heartbeats
    const sent = await counting(() => new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000)));
    idle[mode] = sent / IDLE_SECONDS / IDLE_PROCESSES;
    console.log(
      `idle, liveness ${mode.padEnd(3)} (default heartbeat): ${idle[mode]!.toFixed(3)} commands/s per process ` +
        `(${JSON.stringify(Object.fromEntries(sentCommands))} over ${IDLE_SECONDS} s, ${IDLE_PROCESSES} processes)`,
    );
    controllers.forEach((c) => c.abort());
    await Promise.all(pending);
    await Promise.all(group.map((l) => l.close()));
  }
  console.log(`  ratio on/off: ${(idle.on! / idle.off!).toFixed(2)}`);
} finally {
  await Promise.all(layers.map((l) => l.close()));
  await servers.stop();
}
