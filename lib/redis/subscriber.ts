/**
 * The Pub/Sub subscriptions of one shard, on that shard's one dedicated subscriber connection
 * (`shardSubscriber`), or of a whole Redis Cluster through its client (pubsub-cluster.ts): what
 * differs is a `SubscriberPort`.
 *
 * - Reference-counted: `acquire(name)` subscribes on the first holder, `release(name)`
 *   unsubscribes when the last holder lets go. `acquire` resolves once Redis confirmed the
 *   subscription, `release` once Redis confirmed the UNSUBSCRIBE (or the connection is gone).
 * - Written only to a ready connection. While the connection is anything but 'ready' nothing
 *   is written or queued: `wanted` alone says what should be subscribed, and every time the
 *   connection becomes ready (first connect and each reconnect) the whole `wanted` set is
 *   subscribed (chunked) before anything else. That is what keeps non-subscriber commands off
 *   a connection in subscriber mode: ioredis writes SUBSCRIBE (a 'loading'-flagged command)
 *   during its handshake, before the ready check's command (INFO then, HELLO now: hello.ts),
 *   and a SUBSCRIBE confirmed before that command went out made ioredis refuse it ("Connection
 *   in subscriber mode, only subscriber commands may be used"), drop the connection and lose
 *   the subscription (the Pub/Sub bench stall on 3 hosts). Holding SUBSCRIBEs until 'ready'
 *   lets the subscriber connection keep the ready check, so on a Sentinel shard it is verified
 *   to be on the master too.
 * - Ordered: while ready, every SUBSCRIBE/UNSUBSCRIBE is written synchronously, in call order,
 *   on the one connection, so for each name the last command sent matches `wanted`. Commands
 *   in flight when the connection drops are rejected (not resent by ioredis after the
 *   reconnect, where they could contradict `wanted`); the resubscription on 'ready' settles
 *   every acquire still waiting for its confirmation.
 * - On a cluster (`resubscribes`), ioredis subscribes again by itself what Redis confirmed,
 *   after failovers and reconnects: 'ready' sends only the names still unconfirmed, and a
 *   failed (S)SUBSCRIBE on a ready cluster (a master down) rejects its acquires.
 */
import type { Redis } from 'ioredis';
import { replaceSubscriptionSet } from './ioredis-internals.ts';
import type { Shard } from './shard.ts';

/** The connection (or cluster client) subscriptions are made on, and how. */
export interface SubscriberPort {
  /** 'ready' when commands can be written. */
  readonly status: string;
  /** Runs `listener` every time it becomes ready, before any other 'ready' listener. */
  onReady(listener: () => void): void;
  /** One SUBSCRIBE (SSUBSCRIBE) of `names`: a batch from `batches()`. */
  subscribe(names: string[]): Promise<unknown>;
  unsubscribe(name: string): Promise<unknown>;
  /** `names` split into what one command may carry (on a cluster, one slot's). */
  batches(names: string[]): string[][];
  /**
   * The client subscribes again by itself what Redis confirmed (ioredis's Cluster does): on
   * 'ready' only names still unconfirmed are sent (resending the others would make ioredis list
   * them twice).
   */
  readonly resubscribes?: boolean;
}

/** Names per SUBSCRIBE command when resubscribing, so no single command is huge. */
const RESUBSCRIBE_CHUNK = 1000;

/** Holders of a name whose SUBSCRIBE is not confirmed yet. */
interface Pending {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

const noop = (): void => {};

/**
 * Stands in for ioredis's per-connection SubscriptionSet, which keeps its own string copy of
 * every subscribed name in a dictionary (≈ 120 bytes per name: 12 MB for 100,000 channels)
 * only for its `autoResubscribe` — off here, `wanted` is what gets resubscribed. ioredis reads
 * nothing else from it: being truthy is what keeps the connection in subscriber mode.
 */
const NO_NAME_COPIES = {
  add: noop,
  del: noop,
  // Never called by ioredis 5.11.1 with autoResubscribe off: a guard should a version start to.
  channels: (): string[] => [],
  isEmpty: (): boolean => false,
};

/**
 * Swaps the SubscriptionSet ioredis creates when a connection enters subscriber mode for
 * NO_NAME_COPIES (ioredis-internals.ts). Called as SUBSCRIBEs are confirmed, so a set holds at
 * most the names of one batch of replies before it is dropped.
 */
function dropNameCopies(client: Redis): void {
  replaceSubscriptionSet(client, NO_NAME_COPIES);
}
const resolved: Promise<void> = Promise.resolve();

function pending(): Pending {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers await it; this only keeps an unawaited failure from becoming unhandled.
  promise.catch(noop);
  return { promise, resolve, reject };
}

export class Subscriptions {
  /**
   * Name → number of holders. A plain number per name (no object, no promise once confirmed):
   * 100,000 idle channels are 100,000 of these.
   */
  private readonly wanted = new Map<string, number>();
  /** Wanted names whose SUBSCRIBE Redis has not confirmed yet on the current connection. */
  private readonly unconfirmed = new Map<string, Pending>();
  /** Settles when the subscription of the whole `wanted` set on the last 'ready' is confirmed. */
  private synced: Promise<void> = resolved;
  private closed = false;

  constructor(
    private readonly port: SubscriberPort,
    private readonly onError: (err: unknown, context: string) => void,
  ) {
    // Before the shard's own 'ready' listener, which reports 'up': the layer then awaits
    // `resubscribed()` of this very connection.
    port.onReady(() => this.subscribeAll());
  }

  /** Adds a holder of `name`; resolves once Redis confirmed the subscription. */
  acquire(name: string): Promise<void> {
    const refs = this.wanted.get(name);
    if (refs !== undefined) {
      this.wanted.set(name, refs + 1);
      return this.unconfirmed.get(name)?.promise ?? resolved;
    }
    this.wanted.set(name, 1);
    const wait = pending();
    this.unconfirmed.set(name, wait);
    // Not ready: subscribeAll() sends it when the connection is.
    if (this.port.status === 'ready') {
      this.port.subscribe([name]).then(
        () => this.confirmed(name, wait),
        (err: unknown) => this.failed(name, wait, err),
      );
    }
    return wait.promise;
  }

  /** The pending or confirmed subscription of a held name. */
  ready(name: string): Promise<void> {
    return this.unconfirmed.get(name)?.promise ?? resolved;
  }

  /**
   * Drops a holder of `name`; the last one unsubscribes, and the promise resolves once Redis
   * confirmed it. Never rejects: a failed UNSUBSCRIBE is reported (the connection is gone, or
   * it will be resubscribed without this name after the reconnect).
   */
  release(name: string): Promise<void> {
    const refs = this.wanted.get(name);
    if (refs === undefined) return resolved;
    if (refs > 1) {
      this.wanted.set(name, refs - 1);
      return resolved;
    }
    this.wanted.delete(name);
    // Its holders asked for it and let go of it: what they wait for is over, not failed.
    const wait = this.unconfirmed.get(name);
    if (wait) {
      this.unconfirmed.delete(name);
      wait.resolve();
    }
    // Not ready: the next connection starts without it (subscribeAll() skips it); a client that
    // resubscribes by itself is told to forget it (sent once it is ready; nothing waits).
    if (this.port.status !== 'ready') {
      if (this.port.resubscribes) this.port.unsubscribe(name).catch(noop);
      return resolved;
    }
    return this.port.unsubscribe(name).then(noop, (err: unknown) => {
      if (!this.closed && this.port.status === 'ready') this.onError(err, `UNSUBSCRIBE ${name}`);
    });
  }

  /**
   * Settles once every wanted name is subscribed on the current connection (the subscription
   * started when it became ready); rejects if the connection dropped first.
   */
  resubscribed(): Promise<void> {
    return this.synced;
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
    this.unconfirmed.clear();
  }

  /** The connection became ready: subscribe every wanted name, first thing on it. */
  private subscribeAll(): void {
    if (this.closed) return;
    const replies: Promise<void>[] = [];
    const names = this.port.resubscribes ? this.unconfirmed.keys() : this.wanted.keys();
    for (const chunk of this.port.batches([...names])) {
      // Each chunk's acquires are settled when it is confirmed, not when all are.
      const waits = chunk.map((name) => this.unconfirmed.get(name));
      replies.push(
        this.port.subscribe(chunk).then(() => {
          chunk.forEach((name, j) => {
            const wait = waits[j];
            if (wait) this.confirmed(name, wait);
          });
        }),
      );
    }
    this.synced = Promise.all(replies).then(noop);
    this.synced.catch(noop);
  }

  private confirmed(name: string, wait: Pending): void {
    // A stale confirmation (the name was released, maybe re-acquired since) settles nothing new.
    if (this.unconfirmed.get(name) !== wait) return;
    this.unconfirmed.delete(name);
    wait.resolve();
  }

  private failed(name: string, wait: Pending, err: unknown): void {
    if (this.unconfirmed.get(name) !== wait) return;
    // Lost with the connection: subscribeAll() retries it on the next 'ready'.
    if (this.port.status !== 'ready') return;
    // Refused by Redis (ACL…): nobody holds a subscription that does not exist.
    this.unconfirmed.delete(name);
    this.wanted.delete(name);
    wait.reject(err);
  }
}

/** `names` in chunks of RESUBSCRIBE_CHUNK. */
export function chunked(names: string[]): string[][] {
  const chunks: string[][] = [];
  for (let i = 0; i < names.length; i += RESUBSCRIBE_CHUNK) {
    chunks.push(names.slice(i, i + RESUBSCRIBE_CHUNK));
  }
  return chunks;
}

/**
 * A shard's dedicated subscriber connection as a SubscriberPort; Redis's messages go to
 * `onMessage`.
 */
export function shardSubscriber(
  shard: Shard,
  onMessage: (name: Buffer, payload: Buffer) => void,
): SubscriberPort & { readonly client: Redis } {
  // autoResubscribe off: resubscribing is Subscriptions' (resolves the pending acquires). The
  // ready check stays on (HELLO before any SUBSCRIBE: see above; Sentinel: the role is checked).
  // maxRetriesPerRequest 0: ioredis rejects the (UN)SUBSCRIBEs in flight, or queued in the
  // moment the socket is gone but the close not yet handled, as the connection drops (it
  // would otherwise leave them unsettled, nothing being resent) — `wanted` is resubscribed
  // on 'ready' instead.
  const client = shard.connect('subscriber', {
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
  });
  client.on('messageBuffer', onMessage);
  return {
    client,
    get status() {
      return client.status;
    },
    onReady: (listener) => client.prependListener('ready', listener),
    subscribe: (names) =>
      client.subscribe(...names).then((count) => {
        dropNameCopies(client);
        return count;
      }),
    unsubscribe: (name) => client.unsubscribe(name),
    batches: chunked,
  };
}
