/**
 * The core layer's prefetch for normal channels (work queues other processes may read too).
 * While a receiver waits, the reader may pop up to `window` more messages, kept here undecoded.
 * The window starts at 1, doubles (up to MAX_WINDOW) each time the receivers here claim a whole
 * batch, and halves when some of it had to be given back. Whatever is not claimed within HOLD_MS
 * of its pop goes back to the queue unchanged (same member, same score, so same place:
 * give_back.lua), so a busy or stalled consumer never sits on work another process could do.
 */

const MAX_WINDOW = 32;
const HOLD_MS = 20;

/** A popped message as it came out of Redis. */
export interface Popped {
  member: Buffer;
  score: number;
  shard: number;
}

/** Puts messages popped from `key` on `shard` back (give_back.lua); never rejects. */
export type GiveBack = (
  shard: number,
  key: string,
  messages: Array<{ score: number; member: Buffer }>,
) => Promise<void>;

/** One normal channel's popped-but-unclaimed messages and its window. */
interface Held {
  popped: Array<Popped | undefined>;
  head: number;
  window: number;
  /** Gives back what is still unclaimed HOLD_MS after the oldest pop. */
  timer: NodeJS.Timeout | undefined;
}

export class Prefetch {
  private readonly held = new Map<string, Held>();
  /** Give-backs in flight, awaited by close(). */
  private readonly givingBack = new Set<Promise<void>>();

  constructor(
    private readonly expiryMs: number,
    private readonly giveBackTo: GiveBack,
    private readonly onExpired: () => void,
  ) {}

  /** How many more messages a receive on `key` may pop now. */
  window(key: string): number {
    return this.held.get(key)?.window ?? 1;
  }

  /** Keeps a popped message for the next receive on `key`. */
  hold(key: string, popped: Popped): void {
    let state = this.held.get(key);
    if (!state) {
      state = { popped: [], head: 0, window: 1, timer: undefined };
      this.held.set(key, state);
    }
    state.popped.push(popped);
    state.timer ??= setTimeout(() => this.giveBack(key, true), HOLD_MS);
  }

  /**
   * Hands `key`'s held messages, oldest first, to `take` until it returns a message (expired or
   * unreadable ones it skips return undefined); undefined when none is left.
   */
  claim<M>(key: string, take: (popped: Popped) => M | undefined): M | undefined {
    const state = this.held.get(key);
    if (!state) return undefined;
    while (state.head < state.popped.length) {
      const i = state.head++;
      const popped = state.popped[i]!;
      state.popped[i] = undefined;
      if (state.head === state.popped.length) {
        // The whole batch was claimed: this consumer keeps up, so let it take more next time.
        reset(state);
        state.window = Math.min(MAX_WINDOW, state.window * 2);
      }
      const message = take(popped);
      if (message !== undefined) return message;
    }
    return undefined;
  }

  /**
   * Returns `key`'s unclaimed messages to their queue (on the shard each came from).
   * `slow`: they outstayed HOLD_MS, so the window halves.
   */
  giveBack(key: string, slow: boolean): Promise<void> {
    const state = this.held.get(key);
    if (!state || state.head === state.popped.length) return Promise.resolve();
    const { popped, head } = state;
    reset(state);
    if (slow) state.window = Math.max(1, state.window >> 1);
    const now = Date.now();
    const perShard = new Map<number, Array<{ score: number; member: Buffer }>>();
    for (let i = head; i < popped.length; i++) {
      const { member, score, shard } = popped[i]!;
      if (!(score * 1000 + this.expiryMs > now)) {
        this.onExpired();
        continue;
      }
      let messages = perShard.get(shard);
      if (!messages) perShard.set(shard, (messages = []));
      messages.push({ score, member });
    }
    const done = Promise.all(
      [...perShard].map(([shard, messages]) => this.giveBackTo(shard, key, messages)),
    ).then(() => undefined);
    this.givingBack.add(done);
    void done.finally(() => this.givingBack.delete(done));
    return done;
  }

  /** Gives `key`'s messages back and forgets it (deleteChannel of a normal channel). */
  forget(key: string): Promise<void> {
    const done = this.giveBack(key, false);
    this.held.delete(key);
    return done;
  }

  /** Drops every held message (flush: the queues they came from are being deleted). */
  clear(): void {
    for (const state of this.held.values()) reset(state);
  }

  /** Gives everything back, and resolves once every give-back has settled. */
  async close(): Promise<void> {
    for (const key of this.held.keys()) void this.giveBack(key, false);
    this.held.clear();
    await Promise.all(this.givingBack);
  }
}

function reset(state: Held): void {
  clearTimeout(state.timer);
  state.timer = undefined;
  state.popped = [];
  state.head = 0;
}
