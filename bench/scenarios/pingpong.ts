/**
 * Round-trip latency over two process-local channels: the pinger sends to B and waits on A,
 * the ponger echoes B→A. One message in flight, so each sample is two full send→receive hops.
 * Samples from the warm-up period are dropped.
 *
 * Three shapes (bench/types.ts ids):
 * - `*-pingpong`: one layer for both channels (one process key, one reader loop);
 * - `*-pingpong-2layer`: the pinger's channel on one layer, the ponger's on another, in one
 *   process (two readers, two process keys);
 * - `*-pingpong-2proc`: the ponger in a child process with its own layer (bench/ponger.ts), as
 *   a chat message crosses from one server process to another.
 */
import { percentileSorted } from '../stats.ts';
import type { ScenarioResult } from '../types.ts';
import { END, Watchdog, benchMessage, now, type PingPongLayer } from './common.ts';

interface PingParams {
  duration: number;
  warmup: number;
  stallSeconds: number;
}

/** Echoes every message received on `from` to `to` until the end marker. */
export async function ponger(
  layer: PingPongLayer,
  from: string,
  to: string,
  onMessage?: () => void,
): Promise<void> {
  for (;;) {
    const m = await layer.receive(from);
    onMessage?.();
    if (m.type === END) return;
    await layer.send(to, m);
  }
}

/** Timed round trips: send to `out`, await `back`; ends the ponger with the end marker. */
async function pinger(
  layer: PingPongLayer,
  back: string,
  out: string,
  p: PingParams,
  watchdog: Watchdog,
): Promise<ScenarioResult> {
  const samples: number[] = [];
  let trips = 0;
  const measureFrom = now() + p.warmup * 1000;
  const end = measureFrom + p.duration * 1000;
  for (let i = 0; ; i++) {
    const t = now();
    if (t >= end) break;
    await layer.send(out, benchMessage(i));
    await layer.receive(back);
    watchdog.progress();
    trips++;
    if (t >= measureFrom) samples.push(now() - t);
  }
  await layer.send(out, { type: END });
  samples.sort((x, y) => x - y);
  return {
    metrics: { p50: percentileSorted(samples, 50), p99: percentileSorted(samples, 99) },
    info: { samples: samples.length, max: samples[samples.length - 1], messages: 2 * trips },
  };
}

/** Runs pinger and (local) ponger under one stall watchdog. */
async function watched(
  p: PingParams,
  run: (watchdog: Watchdog) => Promise<[ScenarioResult, ...unknown[]]>,
): Promise<ScenarioResult> {
  const watchdog = new Watchdog(p.stallSeconds * 1000);
  try {
    return (await watchdog.race(run(watchdog)))[0];
  } finally {
    watchdog.stop();
  }
}

/** Both channels on one layer. */
export function pingPongScenario(layer: PingPongLayer, p: PingParams): Promise<ScenarioResult> {
  return twoLayerPingPong(layer, layer, p);
}

/** The pinger's channel on `ping`, the ponger's on `pong` (two layers in one process). */
export async function twoLayerPingPong(
  ping: PingPongLayer,
  pong: PingPongLayer,
  p: PingParams,
): Promise<ScenarioResult> {
  const a = await ping.newChannel();
  const b = await pong.newChannel();
  return watched(p, (w) => Promise.all([pinger(ping, a, b, p, w), ponger(pong, b, a)]));
}

/** A ponger in another process: it echoes to the channel it was given, from the one it names. */
export interface RemotePonger {
  /** The ponger's own channel (where pings go). */
  channel: string;
  /** Settles when the ponger process has exited (rejects if it failed). */
  done: Promise<void>;
}

/** The pinger here, the ponger in the process `start` launches (given the reply channel). */
export async function crossProcessPingPong(
  layer: PingPongLayer,
  p: PingParams,
  start: (replyTo: string) => Promise<RemotePonger>,
): Promise<ScenarioResult> {
  const a = await layer.newChannel();
  const remote = await start(a);
  return watched(p, (w) => Promise.all([pinger(layer, a, remote.channel, p, w), remote.done]));
}
