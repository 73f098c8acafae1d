/**
 * Every ioredis internal chanlayer touches, in one place (ioredis is pinned to an exact version:
 * docs/architecture.md). Each accessor says what it relies on and what would silently stop
 * without it; each is guarded — if the internal is missing it falls back to the safe behaviour
 * and clears its `supported` flag, which test/ioredis-internals.test.ts asserts along with the
 * effect, so an upgrade that renames one fails that test instead of degrading quietly.
 *
 * Public ioredis API used the usual way is not listed here (`Command`, `sendCommand`, options).
 */
import type { Cluster, Redis } from 'ioredis';

/** False once an accessor met a client without the internal it needs (the fallback ran). */
export const supported = {
  autoPipeline: true,
  socket: true,
  reconnectTimer: true,
  sentinelIterator: true,
  readyCheck: true,
  subscriptionSet: true,
  flushQueue: true,
  clusterSubscriber: true,
  clusterPool: true,
  shardedSubscribers: true,
};

/** The private fields read or written, as ioredis 5.11 declares them. */
interface Internals {
  /** Auto-pipelines per slot collecting commands (sent on setImmediate). */
  _autoPipelines?: Map<string, unknown>;
  /** Slots whose auto-pipeline is written and awaiting replies. */
  _runningAutoPipelines?: Set<string>;
  /** The backoff timer of a 'reconnecting' client. */
  reconnectTimeout?: NodeJS.Timeout | null;
  connector?: { sentinelIterator?: { sentinels?: SentinelAddress[]; cursor?: number } };
  /** Run on every connect before 'ready'; for Sentinel, its `role` is checked against 'master'. */
  _readyCheck?: (callback: ReadyCallback) => void;
  /** Rejects every queued command (offline queue and commands awaiting replies). */
  flushQueue?: (error: Error) => void;
  /** `subscriber`: the SubscriptionSet of a connection in subscriber mode, else false. */
  condition?: { subscriber?: unknown } | null;
}

const internals = (client: Redis): Internals => client as unknown as Internals;

/** A Cluster's (global) ClusterSubscriber, as ioredis 5.11 declares it. */
interface ClusterSubscriberInternals {
  /** Makes a new subscriber connection (lazy) to a node of the pool, and resubscribes on it. */
  selectSubscriber?: () => void;
  getInstance?: () => Redis | null;
}

/** A Cluster's ConnectionPool (its node connections), as ioredis 5.11 declares it. */
interface ConnectionPoolInternals {
  getInstanceByKey?: (key: string) => Redis | undefined;
}

/** A Cluster's ClusterSubscriberGroup and its ShardedSubscribers, as ioredis 5.11 declares them. */
interface SubscriberGroupInternals {
  shardedSubscribers?: Map<
    string,
    { instance?: Redis | null; messageListeners?: Map<string, (...args: unknown[]) => void> }
  >;
}

export type Socket = Redis['stream'];
export type SentinelAddress = { host?: string; port?: number };
export type ReadyCallback = (err: Error | null, info?: Record<string, string>) => void;

/**
 * True when no auto-pipelined command of `client` is collecting or awaiting its replies (only
 * then may a command be written past the auto-pipeline without overtaking one issued earlier).
 * Relies on `_autoPipelines` / `_runningAutoPipelines` (the public `autoPipelineQueueSize` sees
 * only the first). Without them: false, so writeDirect never bypasses — correct but slower.
 */
export function autoPipelineIdle(client: Redis): boolean {
  const { _autoPipelines: queued, _runningAutoPipelines: running } = internals(client);
  if (queued === undefined || running === undefined) {
    supported.autoPipeline = false;
    return false;
  }
  return queued.size === 0 && running.size === 0;
}

/**
 * The socket ioredis writes `client`'s commands into (`client.stream`, declared `@ignore`):
 * corked by the publisher and writeDirect to batch writes, and its remote address tells which
 * server a Sentinel connection reached. Undefined before the first connect or if it is gone.
 */
export function socketOf(client: Redis): Socket | undefined {
  if (!('stream' in client)) {
    supported.socket = false;
    return undefined;
  }
  return client.stream ?? undefined;
}

/**
 * A client waiting out its reconnect backoff reconnects now (after a `+switch-master` the new
 * master is known to be there). Relies on `reconnectTimeout`; without it, true is never
 * returned and the client reconnects when its (short: Shard.retryDelay) backoff ends — the
 * fast failover would silently lose up to that delay.
 */
export function reconnectNow(client: Redis): boolean {
  const state = internals(client);
  if (!('reconnectTimeout' in state)) {
    supported.reconnectTimer = false;
    return false;
  }
  if (client.status !== 'reconnecting' || !state.reconnectTimeout) return false;
  clearTimeout(state.reconnectTimeout);
  state.reconnectTimeout = null;
  client.connect().catch(() => {});
  return true;
}

/**
 * Makes a Sentinel client ask the sentinels `first` picks before the others on its next
 * connect (the one that announced a switch knows the new master). Relies on
 * `connector.sentinelIterator` (`sentinels`, `cursor`); without it the client keeps its order
 * and may first be sent to the old master by a sentinel that has not heard yet.
 */
export function askSentinelsFirst(
  client: Redis,
  first: (sentinel: SentinelAddress) => boolean,
): void {
  const iterator = internals(client).connector?.sentinelIterator;
  if (!iterator || !Array.isArray(iterator.sentinels)) {
    if (client.options.sentinels?.length) supported.sentinelIterator = false;
    return;
  }
  iterator.sentinels = [
    ...iterator.sentinels.filter(first),
    ...iterator.sentinels.filter((s) => !first(s)),
  ];
  iterator.cursor = 0;
}

/**
 * Replaces ioredis's per-connection ready check (which asks INFO: refused to a least-privilege
 * ACL user, then a console warning per connect and, on Sentinel, no master check) by `check`,
 * whose `role` the Sentinel connector verifies as it does INFO's. Relies on `_readyCheck`;
 * without it ioredis's own check runs (warnings under such a user; correct otherwise).
 */
export function replaceReadyCheck(client: Redis, check: (callback: ReadyCallback) => void): void {
  const state = internals(client);
  if (typeof state._readyCheck !== 'function') {
    supported.readyCheck = false;
    return;
  }
  state._readyCheck = check;
}

/**
 * Runs `prepare` on every connection a Cluster makes for global SUBSCRIBE, before it connects
 * (ioredis creates it lazily, with a ready check that asks INFO; `useHelloReadyCheck` is what
 * the layers pass). Relies on the cluster's `subscriber` (ClusterSubscriber: `selectSubscriber`,
 * `getInstance`); without them the connection keeps ioredis's INFO ready check (refused to a
 * least-privilege user: an ACL LOG entry per connect, delivery unaffected).
 */
export function prepareGlobalSubscriber(cluster: Cluster, prepare: (client: Redis) => void): void {
  const sub = (cluster as unknown as { subscriber?: ClusterSubscriberInternals }).subscriber;
  const select = sub?.selectSubscriber;
  if (!sub || typeof select !== 'function' || typeof sub.getInstance !== 'function') {
    supported.clusterSubscriber = false;
    return;
  }
  sub.selectSubscriber = () => {
    select.call(sub);
    const client = sub.getInstance!();
    if (client) prepare(client);
  };
}

/**
 * The cluster's own connection to node `key` ('host:port', as `cluster.slots` names it): a
 * slot's commands are written straight to its owner (cluster-writes.ts). Relies on
 * `connectionPool.getInstanceByKey`; without it undefined, and every command goes through the
 * cluster client — correct, but one write per command (slower: cluster-writes.ts).
 */
export function clusterNode(cluster: Cluster, key: string): Redis | undefined {
  const pool = (cluster as unknown as { connectionPool?: ConnectionPoolInternals }).connectionPool;
  if (typeof pool?.getInstanceByKey !== 'function') {
    supported.clusterPool = false;
    return undefined;
  }
  return pool.getInstanceByKey(key);
}

/**
 * Keeps a Cluster's sharded subscriber connections from decoding every message into strings.
 * Each forwards both 'smessage' and 'smessageBuffer' to the cluster, and a connection decodes a
 * message's name and payload as UTF-8 whenever its 'smessage' has a listener, though nobody
 * listens to the cluster's (0.8 µs of 8.5 of client CPU per message, 64 in flight). The
 * forwarder is removed from each subscriber there is and as ioredis makes more ('+subscriber';
 * the group and its Map are made once, with the cluster). Relies on the cluster's
 * `shardedSubscribers.shardedSubscribers` (`instance`, `messageListeners`); without them every
 * message is still decoded (correct, slower).
 */
export function shardedMessagesAsBuffers(cluster: Cluster): void {
  const group = (cluster as unknown as { shardedSubscribers?: SubscriberGroupInternals })
    .shardedSubscribers;
  if (!(group?.shardedSubscribers instanceof Map)) {
    supported.shardedSubscribers = false;
    return;
  }
  const subscribers = group.shardedSubscribers;
  const strip = (): void => {
    for (const { instance, messageListeners } of subscribers.values()) {
      const forward = messageListeners?.get('smessage');
      if (instance && forward) instance.removeListener('smessage', forward);
    }
  };
  strip();
  cluster.on('+subscriber', strip);
}

/**
 * Swaps the SubscriptionSet of a connection in subscriber mode for `standIn` (only if there is
 * a real set to swap: being truthy is what keeps ioredis in subscriber mode). Relies on
 * `condition.subscriber`; without it ioredis keeps its own copy of every subscribed name —
 * correct, but ≈ 120 bytes more per channel.
 */
export function replaceSubscriptionSet(client: Redis, standIn: object): void {
  const condition = internals(client).condition;
  if (!condition || !('subscriber' in condition)) {
    supported.subscriptionSet = false;
    return;
  }
  const set = condition.subscriber as { add?: unknown } | false | undefined;
  if (set && set !== standIn && typeof set.add === 'function') condition.subscriber = standIn;
}

/**
 * Rejects the commands `client` holds: after `disconnect()` a client that was waiting out a
 * backoff has no socket left to close, so ioredis never settles its offline queue — the
 * commands would hang and their `commandTimeout` timers hold the process after close().
 * Needed only for a client that can queue while reconnecting: with `enableOfflineQueue: false`
 * and `maxRetriesPerRequest: 0` (the layers' command connections) nothing is left queued (the
 * test measures it); the subscriber (`maxRetriesPerRequest: 0`) writes only when ready and the
 * blocking connection never reconnects. Relies on `flushQueue`; without it such commands hang
 * until their timeout.
 */
export function flushQueued(client: Redis, error: Error): void {
  const state = internals(client);
  if (typeof state.flushQueue !== 'function') {
    supported.flushQueue = false;
    return;
  }
  state.flushQueue(error);
}

/**
 * ioredis's error texts (its errors have no codes), matched to tell connection trouble from a
 * Redis reply. Checked against a real client by the test: a changed text would otherwise turn
 * a dropped connection into an unexplained error.
 */
export const ERROR_TEXT = {
  /** `commandTimeout` elapsed. */
  commandTimeout: 'Command timed out',
  /** Rejected by close or disconnect (also 'Connection is closed.' on a closed client). */
  connectionClosed: 'Connection is closed',
  /** `enableOfflineQueue: false` and not connected. */
  notWritable: "Stream isn't writeable",
  /** Flushed by `maxRetriesPerRequest` on a reconnect (MaxRetriesPerRequestError). */
  maxRetries: 'max retries per request',
  /** Cluster: `enableOfflineQueue: false` and the cluster not ready. */
  clusterNotReady: "Cluster isn't ready",
  /** Cluster: MOVED/ASK/TRYAGAIN/CLUSTERDOWN followed `maxRedirections` times. */
  clusterRedirections: 'Too many Cluster redirections',
  /**
   * Cluster, sharded subscriber: a push no command waits for, here the `sunsubscribe` Redis
   * sends when a subscribed channel's slot moves away (docs/cluster.md (b)).
   */
  slotUnsubscribed: 'Last reply: sunsubscribe,',
} as const;
