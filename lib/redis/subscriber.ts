/**
 * The Pub/Sub subscriptions of one shard, on that shard's one dedicated subscriber connection.
 *
 * - Reference-counted: `acquire(name)` subscribes on the first holder, `release(name)`
 *   unsubscribes when the last holder lets go. Both resolve once Redis confirmed the command.
 * - Ordered: every SUBSCRIBE/UNSUBSCRIBE is written synchronously, in call order, on a single
 *   connection, so the commands for one name reach Redis in the order the holders changed and
 *   the last command sent for a name always matches `wanted` — no interleaving of concurrent
 *   add/discard calls can leave Redis in a state the local bookkeeping does not describe.
 * - Reconnects: ioredis' `autoResubscribe` is off. On every reconnect `resubscribe()` sends
 *   SUBSCRIBE for the whole `wanted` set (chunked) and resolves once Redis confirmed it — that is
 *   what lets the layer emit 'reconnect' only when every subscription is back. ioredis resends
 *   commands that were in flight when the connection dropped after these, which is harmless:
 *   for each name the last of them still matches `wanted`.
 */
import type { Redis } from 'ioredis';
import type { Shard } from './shard.ts';

/** Names per SUBSCRIBE command when resubscribing, so no single command is huge. */
const RESUBSCRIBE_CHUNK = 1000;

interface Entry {
  refs: number;
  /** Settles when Redis confirmed the SUBSCRIBE that made this name wanted. */
  ready: Promise<void>;
}

const noop = (): void => {};

export class Subscriptions {
  readonly client: Redis;
  private readonly wanted = new Map<string, Entry>();
  private closed = false;

  constructor(
    shard: Shard,
    onMessage: (name: string, payload: Buffer) => void,
    private readonly onError: (err: unknown, context: string) => void,
  ) {
    // No ready check: ioredis writes SUBSCRIBE (a 'loading'-flagged command) as soon as the
    // socket connects, and the ready check's INFO sent after the SUBSCRIBE reply would then be
    // refused in subscriber mode, making ioredis drop the connection — and the subscription.
    this.client = shard.connect('subscriber', { autoResubscribe: false, enableReadyCheck: false });
    this.client.on('messageBuffer', (name: Buffer, payload: Buffer) =>
      onMessage(name.toString(), payload),
    );
  }

  /** Adds a holder of `name`; resolves once Redis confirmed the subscription. */
  acquire(name: string): Promise<void> {
    const entry = this.wanted.get(name);
    if (entry) {
      entry.refs++;
      return entry.ready;
    }
    const ready = this.client.subscribe(name).then(noop);
    // Callers await it; this only keeps an unawaited failure from becoming unhandled.
    ready.catch(noop);
    this.wanted.set(name, { refs: 1, ready });
    return ready;
  }

  /** The pending or confirmed subscription of a held name. */
  ready(name: string): Promise<void> {
    return this.wanted.get(name)?.ready ?? Promise.resolve();
  }

  /**
   * Drops a holder of `name`; the last one unsubscribes, and the promise resolves once Redis
   * confirmed it. Never rejects: a failed UNSUBSCRIBE is reported (the connection is gone, or
   * it will be resubscribed without this name after the reconnect).
   */
  release(name: string): Promise<void> {
    const entry = this.wanted.get(name);
    if (!entry || --entry.refs > 0) return Promise.resolve();
    this.wanted.delete(name);
    return this.client.unsubscribe(name).then(noop, (err: unknown) => {
      if (!this.closed) this.onError(err, `UNSUBSCRIBE ${name}`);
    });
  }

  /** Subscribes every wanted name again (after a reconnect); resolves once all are confirmed. */
  async resubscribe(): Promise<void> {
    const names = [...this.wanted.keys()];
    const replies: Promise<unknown>[] = [];
    for (let i = 0; i < names.length; i += RESUBSCRIBE_CHUNK) {
      replies.push(this.client.subscribe(...names.slice(i, i + RESUBSCRIBE_CHUNK)));
    }
    await Promise.all(replies);
  }

  /** Names currently wanted (subscribed or about to be). */
  get size(): number {
    return this.wanted.size;
  }

  has(name: string): boolean {
    return this.wanted.has(name);
  }

  /** Forgets everything; the connection itself is closed with its shard. */
  close(): void {
    this.closed = true;
    this.wanted.clear();
  }
}
