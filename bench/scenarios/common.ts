/** Helpers the chanlayer scenarios share: the message shape, timing, a stall watchdog. */
import type { ChannelLayer, Message } from '../../lib/types.ts';
import { PAYLOAD } from '../types.ts';

/** The layers the bench drives: the API.md interface plus the optional `stats()`. */
export interface BenchLayer extends ChannelLayer {
  stats?(): Record<string, number>;
}

export const now = (): number => performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A fresh object per send, as an application would build it. */
export function benchMessage(i: number): Message {
  return { type: 'bench.msg', i, payload: PAYLOAD };
}

/** Sent after the last counted message; carries how many were sent so reordering is harmless. */
export const END = 'bench.end';

/**
 * Aborts when `progress()` has not been called for `stallMs`. One timer per run, not one per
 * receive: a per-receive timeout would add its own cost to the hot path being measured (and
 * Python's `wait_for` would add far more), so the bench only pays for this when things stall.
 */
export class Watchdog {
  readonly controller = new AbortController();
  private last = now();
  private readonly timer: NodeJS.Timeout;

  constructor(stallMs: number) {
    this.timer = setInterval(
      () => {
        if (now() - this.last > stallMs) {
          this.controller.abort(new Error(`no progress for ${stallMs} ms`));
        }
      },
      Math.min(250, stallMs / 4),
    );
    this.timer.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
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
