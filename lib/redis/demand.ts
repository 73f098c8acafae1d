/**
 * What the core layer's reader may pop: queue keys with receivers waiting in this process, each
 * with a budget. A message leaves Redis only when a receiver here wants one, so the queue in Redis
 * keeps its capacity (senders still get ChannelFull from a slow consumer) and its expiry, and a
 * normal channel — a work queue shared with other processes — is never hoarded by one of them.
 *
 * Every `…!` channel of one newChannel prefix shares one key, so their waiters add up; a message
 * popped for a channel nobody waits on is buffered for it (bounded by capacity, expiring), as
 * channels_redis does.
 */
import { nonLocalName, sharesQueue } from '../names.ts';

/**
 * Extra messages popped from this process's `…!` queue while a receiver waits on it: a receiver
 * that keeps up then gets a batch per round trip instead of one message. Nothing is popped while
 * nobody waits, so a stalled consumer still fills the queue in Redis and its senders still get
 * ChannelFull; at most this many more sit in local buffers. Normal channels get the bounded,
 * given-back prefetch window of prefetch.ts instead.
 */
const LOCAL_PREFETCH = 32;

export class Demand {
  /** Queue key → receivers waiting on its channels. */
  private readonly waiting = new Map<string, number>();
  /**
   * The last queue `onWaiters` counted for: the members of one `…!` queue start waiting in a
   * row (re-receiving after a group message, say), and then need no key built and hashed each.
   */
  private last: { name: string; key: string } | undefined;

  constructor(
    private readonly prefix: string,
    /** A normal channel's prefetch window (prefetch.ts): how many more it may pop. */
    private readonly window: (key: string) => number,
  ) {}

  /** A receiver started (+1) or stopped (-1) waiting on `channel` (Mailboxes' onWaiters). */
  onWaiters(channel: string, delta: number): void {
    const last = this.last;
    let key: string;
    if (last !== undefined && sharesQueue(channel, last.name)) key = last.key;
    else {
      const name = nonLocalName(channel);
      key = this.prefix + name;
      this.last = { name, key };
    }
    this.add(key, delta);
  }

  /** `delta` more (or fewer) receivers wait on queue `key`. */
  add(key: string, delta: number): void {
    const n = (this.waiting.get(key) ?? 0) + delta;
    if (n > 0) this.waiting.set(key, n);
    else this.waiting.delete(key);
  }

  /**
   * Keys with waiting receivers and how many messages each may give: one per waiter, plus
   * LOCAL_PREFETCH for a process-local key or the prefetch window for a normal one.
   */
  budgets(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, waiters] of this.waiting) {
      out.set(key, waiters + (key.endsWith('!') ? LOCAL_PREFETCH : this.window(key)));
    }
    return out;
  }
}
