/**
 * Send→receive throughput on one channel: `inflight` concurrent senders, one receiver, in one
 * process on one layer (as a Django/Node server both sends and receives).
 *
 * The figure is messages received ÷ (first send → last receive). Senders stop at the deadline
 * and then send an end marker carrying the count; the receiver drains until it has them all,
 * so a sender that outruns the receiver gains nothing: the backlog is paid for in the same run.
 * Senders also pause while MAX_BACKLOG messages are sent but not yet received (backpressure a
 * real server would apply): a receiver-bound run then measures the same rate without piling
 * up an unbounded backlog that would stretch the run and Redis's memory.
 */
import type { ScenarioResult } from '../types.ts';
import { END, Watchdog, benchMessage, now, type BenchLayer } from './common.ts';

/** Sent-but-unreceived messages at which senders wait; they resume below half of it. */
export const MAX_BACKLOG = 1024;

export interface StreamRun {
  sent: number;
  received: number;
  elapsedMs: number;
  sendMs: number;
  lost: number;
}

export async function stream(
  layer: BenchLayer,
  channel: string,
  inflight: number,
  seconds: number,
  stallMs: number,
): Promise<StreamRun> {
  const watchdog = new Watchdog(stallMs);
  const t0 = now();
  const deadline = t0 + seconds * 1000;
  let sent = 0;
  let received = 0;
  let tLast = t0;
  // Resolved by the receiver once the backlog is below MAX_BACKLOG / 2 (hysteresis, so a
  // receiver-bound run wakes the senders in batches rather than once per message).
  let drained: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  let expected = Infinity;
  const receiver = (async () => {
    while (received < expected) {
      const m = await layer.receive(channel);
      watchdog.progress();
      if (m.type === END) expected = m.sent as number;
      else {
        received++;
        tLast = now();
        if (wake && sent - received < MAX_BACKLOG / 2) {
          wake();
          wake = drained = undefined;
        }
      }
    }
  })();

  const sender = async () => {
    while (now() < deadline) {
      while (sent - received >= MAX_BACKLOG) {
        drained ??= new Promise<void>((resolve) => (wake = resolve));
        await drained;
      }
      const i = sent++;
      await layer.send(channel, benchMessage(i));
      watchdog.progress();
    }
  };
  await Promise.all(Array.from({ length: inflight }, sender));
  const sendMs = now() - t0;
  await layer.send(channel, { type: END, sent });
  try {
    await watchdog.race(receiver);
  } catch (err) {
    // A stall after the end marker means lost messages (reported); before it, a failure.
    if (expected === Infinity) throw err;
  } finally {
    watchdog.stop();
  }
  return { sent, received, elapsedMs: tLast - t0, sendMs, lost: sent - received };
}

export async function streamScenario(
  layer: BenchLayer,
  channel: string,
  inflight: number,
  p: { duration: number; warmup: number; stallSeconds: number },
): Promise<ScenarioResult> {
  const stallMs = p.stallSeconds * 1000;
  const warm = p.warmup > 0 ? await stream(layer, channel, inflight, p.warmup, stallMs) : undefined;
  const r = await stream(layer, channel, inflight, p.duration, stallMs);
  return {
    metrics: { throughput: (r.received / r.elapsedMs) * 1000 },
    // `messages`: every message this process moved, warm-up included (for Redis work per message).
    info: {
      ...r,
      sendRate: (r.sent / r.sendMs) * 1000,
      messages: (warm?.received ?? 0) + r.received,
    },
  };
}
