/** Helpers the chanlayer scenarios share: the message shape, timing, a stall watchdog. */
import type { ChannelLayer, Message } from '../../lib/types.ts';
import { PAYLOAD } from '../types.ts';

/** The layers the bench drives: the `ChannelLayer` interface plus the optional `stats()`. */
export interface BenchLayer extends ChannelLayer {
  stats?(): Record<string, number>;
}

/** What the ping-pong scenario calls: all the bare Pub/Sub client (bench/bare/) has. */
export type PingPongLayer = Pick<ChannelLayer, 'newChannel' | 'send' | 'receive'>;

export const now = (): number => performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A fresh object per send, as an application would build it. */
export function benchMessage(i: number): Message {
  return { type: 'bench.msg', i, payload: PAYLOAD };
}

/** Sent after the last counted message; carries how many were sent so reordering is harmless. */
export const END = 'bench.end';

/**
 * Rejects `stalled` when `progress()` has not been called for `stallMs`. Scenarios race whole
 * loops (not single receives) against it: one timer per run and no AbortSignal per receive,
 * because a per-receive signal or timeout would add its own cost to the very path being
 * measured (and Python's `wait_for` far more), and Django consumers pass none either.
 */
export class Watchdog {
  readonly stalled: Promise<never>;
  private last = now();
  private readonly timer: NodeJS.Timeout;

  constructor(stallMs: number) {
    let fail!: (err: Error) => void;
    this.stalled = new Promise<never>((_, reject) => (fail = reject));
    this.stalled.catch(() => {}); // only an error for whoever races it
    this.timer = setInterval(
      () => {
        if (now() - this.last > stallMs) {
          clearInterval(this.timer);
          fail(new Error(`no progress for ${stallMs} ms`));
        }
      },
      Math.min(250, stallMs / 4),
    );
    this.timer.unref();
  }

  /** `work`, or the stall error if nothing progresses first. */
  race<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.stalled]);
  }

  progress(): void {
    this.last = now();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Runs `fn` over `items` with at most `limit` calls pending (setup work such as groupAdd). */
export async function inBatches<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  for (let i = 0; i < items.length; i += limit) {
    await Promise.all(items.slice(i, i + limit).map(fn));
  }
}

/** The layer's own counters if it offers them (drops, reconnects): kept in the JSON. */
export function layerStats(layer: BenchLayer): Record<string, number> | undefined {
  try {
    return layer.stats?.();
  } catch {
    return undefined;
  }
}
