/**
 * Waiting in tests, in one place: poll a condition (`waitFor`), bound a promise (`within`),
 * or receive with "nothing arrived" as an answer (`receiveOrNothing`).
 */
import type { ChannelLayer, Message } from '../../lib/types.ts';

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Named in the timeout error; a function is asked only then. */
  what?: string | (() => string);
}

/** Polls `check` until it returns true; rejects after `timeoutMs` naming `what` (and the last error). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 10_000, intervalMs = 10, what = 'condition' }: WaitOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      const name = typeof what === 'string' ? what : what();
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${name}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** `promise`, or a clear rejection after `ms` instead of hanging until the test timeout. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The next message on `channel`, or undefined if none came within `ms`. */
export async function receiveOrNothing(
  layer: Pick<ChannelLayer, 'receive'>,
  channel: string,
  ms = 300,
): Promise<Message | undefined> {
  try {
    return await layer.receive(channel, { signal: AbortSignal.timeout(ms) });
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') return undefined;
    throw err;
  }
}
