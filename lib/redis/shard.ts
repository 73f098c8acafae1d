/**
 * One shard = one Redis host or Sentinel group, with an auto-pipelined command connection
 * shared by every operation (the commands named in `unpipelined`, Publisher's PUBLISH and
 * writeDirect's bypass it) and a few dedicated connections (blocking reader, subscriber)
 * created on demand. Reports transitions as 'down'/'up' (role) and refuses a Redis older than
 * 5.0 (no BZPOPMIN). Nothing here needs a `@dangerous` command (no INFO, no ROLE: hello.ts), so a
 * least-privilege ACL user works (README).
 *
 * A Sentinel shard follows failovers (docs/failover.md):
 * - a `SentinelWatch` hears `+switch-master` from any sentinel; every connection of the shard
 *   that waits out a reconnect backoff reconnects at once, one still connected to the old master
 *   is dropped, and new connections ask the sentinel that announced the switch first;
 * - for a few seconds after a switch, reconnect delays stay short (sentinels that have not yet
 *   heard of it may still name the old master);
 * - `READONLY` (a master demoted under us) drops the connection, so it finds the master again;
 * - 'failover' (`{ from, to }` addresses) is emitted when the command connection comes back on
 *   a different server than before.
 */
import { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { AuthenticationError, ConnectionError, errorMessage, RedisTooOld } from '../errors.ts';
import { deadline } from '../deadline.ts';
import { explainFailure } from './failures.ts';
import { serverHello, useHelloReadyCheck } from './hello.ts';
import type { ShardSpec } from './hosts.ts';
import { askSentinelsFirst, flushQueued, reconnectNow, socketOf } from './ioredis-internals.ts';
import { SCRIPTS } from './script-calls.ts';
import { defineScripts } from './scripts.ts';
import { SentinelWatch, type MasterAddress, type MasterSwitch } from './sentinel-watch.ts';

export type Role = 'command' | 'blocking' | 'subscriber';

export interface ShardOptions {
  /** Upper bound for any non-blocking command, including time queued while reconnecting. */
  commandTimeoutMs: number;
  /** Connect the command connection on its first command instead of at construction. */
  lazyConnect?: boolean;
  /**
   * Never hold a command for later: nothing is queued while disconnected (callers await
   * `whenReady()` first) and commands in flight when the connection drops are rejected at once.
   * A command that failed or timed out is then never executed behind the caller's back after
   * a reconnect (ioredis's offline queue and resend would do exactly that).
   */
  failFast?: boolean;
  /**
   * Commands written at once instead of joining the connection's auto-pipeline (which costs a
   * Pipeline object and a deferral per tick): for callers that already batch per tick.
   */
  unpipelined?: string[];
}

/** Reconnect delay: exponential from 50 ms to 2 s, with jitter so shards don't stampede. */
export function reconnectDelay(attempt: number): number {
  const base = Math.min(50 * 2 ** Math.min(attempt, 6), 2000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * `disconnect()`, and settle what it leaves pending: a client waiting to reconnect with an
 * offline queue keeps its queued commands, which would hang (ioredis-internals.ts,
 * flushQueued). Only a command connection without `failFast` can hold any by then.
 */
function hangUp(client: Redis): void {
  client.disconnect();
  if (client.status === 'reconnecting' && client.options.enableOfflineQueue) {
    flushQueued(client, new Error('Connection is closed.'));
  }
}

/** How long after a switch reconnect delays stay short. */
const FOLLOW_WINDOW_MS = 5000;
/** Longest reconnect delay within that window. */
const FOLLOW_DELAY_MS = 50;

/** A master demoted under us answers writes with READONLY: reconnect (the command is rejected). */
function reconnectOnReadonly(err: Error): 1 | false {
  return /READONLY/.test(err.message) ? 1 : false;
}

function remoteOf(client: Redis): MasterAddress | undefined {
  const socket = socketOf(client);
  if (!socket?.remoteAddress || !socket.remotePort) return undefined;
  return { host: socket.remoteAddress, port: socket.remotePort };
}

const sameAddress = (a: MasterAddress | undefined, b: MasterAddress | undefined): boolean =>
  a !== undefined && b !== undefined && a.host === b.host && a.port === b.port;

/** Replies that mean the credentials are wrong: retrying cannot help. */
const AUTH_FAILURE = /^(WRONGPASS|NOAUTH)|invalid (username-)?password/i;

export class Shard extends EventEmitter {
  readonly client: Redis;
  private readonly extra = new Set<Redis>();
  private checked: Promise<void> | undefined;
  private readyWait: Promise<void> | undefined;
  /** Rejects `readyWait`: close() of a client that is between reconnects emits no 'end'. */
  private endReadyWait: (() => void) | undefined;
  private closed = false;
  /** Sentinel shards only. */
  private readonly watch: SentinelWatch | undefined;
  /** Every live connection of the shard, command connection included. */
  private readonly clients = new Set<Redis>();
  /** Number of master switches heard, and when the last one was. */
  private switches = 0;
  private switchedAt = Number.NEGATIVE_INFINITY;
  /** The sentinel that announced the last switch: asked first from then on. */
  private preferredSentinel: MasterAddress | undefined;
  /** Where the command connection was last ready. */
  private master: MasterAddress | undefined;
  /** Why the command connection last failed to connect; cleared when it is ready. */
  private lastError: Error | undefined;

  constructor(
    readonly index: number,
    readonly spec: ShardSpec,
    private readonly opts: ShardOptions,
  ) {
    super();
    if (spec.options.sentinels?.length) {
      this.watch = new SentinelWatch(spec.options);
      this.watch.on('switch', (change: MasterSwitch) => this.switched(change));
    }
    this.client = this.connect('command', {
      enableAutoPipelining: true,
      autoPipeliningIgnoredCommands: opts.unpipelined ?? [],
      commandTimeout: opts.commandTimeoutMs,
      ...(opts.lazyConnect ? { lazyConnect: true } : {}),
      ...(opts.failFast
        ? {
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            autoResendUnfulfilledCommands: false,
          }
        : {}),
    });
  }

  /**
   * Resolves when the command connection is ready (connecting it if lazy), or rejects after
   * `timeoutMs` naming the shard. Needed before each command with `failFast`.
   */
  whenReady(timeoutMs = this.opts.commandTimeoutMs): Promise<void> {
    const client = this.client;
    if (client.status === 'ready') return Promise.resolve();
    if (client.status === 'end') return Promise.reject(new Error('Connection is closed.'));
    if (client.status === 'wait') client.connect().catch(() => {});
    this.readyWait ??= new Promise<void>((resolve, reject) => {
      const done = (): void => {
        client.off('ready', onReady);
        client.off('end', onEnd);
        this.readyWait = undefined;
        this.endReadyWait = undefined;
      };
      const onReady = (): void => {
        done();
        resolve();
      };
      const onEnd = (): void => {
        done();
        reject(new Error('Connection is closed.'));
      };
      client.on('ready', onReady);
      client.on('end', onEnd);
      this.endReadyWait = onEnd;
    });
    return deadline(this.readyWait, timeoutMs, () =>
      this.unreachable(`no connection within ${timeoutMs} ms`),
    );
  }

  /** A new dedicated connection; `commandTimeout` must exceed any block time used on it. */
  connect(role: Role, extra: RedisOptions = {}): Redis {
    // A connection opened after close() would never be closed: refuse it.
    if (this.closed) throw new Error(`Shard ${this.index} (${this.spec.id}) is closed`);
    const options: RedisOptions = {
      retryStrategy: reconnectDelay,
      maxRetriesPerRequest: null,
      connectionName: `chanlayer:${role}`,
      // disconnect() ends the socket and destroys it only after this long; a socket that already
      // failed never reports its close again, so the full wait (2 s by default) held the
      // process after close() during an outage. On loopback or a LAN the server's FIN comes
      // in well under this.
      disconnectTimeout: 100,
      ...(this.watch ? { reconnectOnError: reconnectOnReadonly } : {}),
      ...this.spec.options,
      ...extra,
    };
    if (this.watch) this.followSwitches(options);
    const client = this.spec.url ? new Redis(this.spec.url, options) : new Redis(options);
    useHelloReadyCheck(client);
    if (role === 'command') defineScripts(client, SCRIPTS);
    if (role !== 'command') this.extra.add(client);
    this.clients.add(client);
    client.on('end', () => this.clients.delete(client));
    // The watch starts with the shard's first connection attempt (a lazy shard stays silent).
    if (this.watch) client.once('connecting', () => this.watch?.start());
    let ready = false;
    let down = false;
    client.on('ready', () => {
      ready = true;
      if (role === 'command') {
        this.lastError = undefined;
        this.noteMaster(client);
      }
      if (down) {
        down = false;
        this.emit('up', role, client);
      }
    });
    client.on('close', () => {
      if (ready && !down) {
        down = true;
        this.emit('down', role, client);
      }
    });
    // ioredis prints unhandled 'error' events. Each one is passed on; the layer reports one
    // per outage (BaseLayer.reportConnectionTrouble).
    client.on('error', (err: Error) => {
      if (role === 'command') this.lastError = err;
      this.emit('connectionError', this.unreachable(undefined, err), role);
    });
    return client;
  }

  /**
   * A command-connection failure as an error that names this shard and says what is known
   * (failures.ts `explainFailure`).
   */
  explain(err: unknown, command = 'the command'): unknown {
    return explainFailure(err, {
      where: this.where,
      index: this.index,
      commandTimeoutMs: this.opts.commandTimeoutMs,
      command,
      unreachable: (detail) => this.unreachable(detail),
    });
  }

  private get where(): string {
    return `Redis ${this.spec.id} (shard ${this.index})`;
  }

  /**
   * The shard cannot be used: `AuthenticationError` when the server refused the credentials,
   * else `ConnectionError`, with the server's or socket's reason (`err`, or the last connection
   * failure) in the message and as `cause`.
   */
  unreachable(detail: string | undefined, err = this.lastError): ConnectionError {
    const reason = err ? errorMessage(err) : undefined;
    const text = [detail, reason].filter(Boolean).join(': ');
    if (reason !== undefined && AUTH_FAILURE.test(reason)) {
      return new AuthenticationError(`${this.where} refused the credentials: ${text}`, this.index, {
        cause: err,
      });
    }
    return new ConnectionError(`${this.where} is not reachable: ${text}`, this.index, {
      cause: err,
    });
  }

  /** Resolves once the server is known to be ≥ 5.0; retried after connection failures. */
  ensureVersion(): Promise<void> {
    this.checked ??= serverHello(this.client).then(
      ({ version }) => {
        if (version && version[0] < 5) {
          throw new RedisTooOld(
            `Redis ${version.join('.')} at ${this.spec.id} is too old: chanlayer needs ≥ 5.0 (BZPOPMIN)`,
          );
        }
      },
      (err: unknown) => {
        this.checked = undefined;
        throw err;
      },
    );
    return this.checked;
  }

  /**
   * Delay before attempt `attempt` to reconnect something of this shard: `reconnectDelay`, but
   * short for a while after a master switch (the new master is known to be there).
   */
  retryDelay(attempt: number): number {
    const delay = reconnectDelay(attempt);
    return Date.now() - this.switchedAt < FOLLOW_WINDOW_MS
      ? Math.min(delay, FOLLOW_DELAY_MS)
      : delay;
  }

  /** Number of `+switch-master` announcements acted on (Sentinel shards). */
  get switchCount(): number {
    return this.switches;
  }

  release(client: Redis): void {
    this.extra.delete(client);
    this.clients.delete(client);
    hangUp(client);
  }

  close(): void {
    this.closed = true;
    this.watch?.close();
    for (const client of this.extra) hangUp(client);
    this.extra.clear();
    hangUp(this.client);
    this.endReadyWait?.();
    this.clients.clear();
    this.removeAllListeners();
  }

  // ---------------------------------------------------------------------------------------
  // Following Sentinel failovers

  /**
   * Per connection: the sentinel that announced the last switch is asked first, and a retry
   * right after a switch is immediate (then short for FOLLOW_WINDOW_MS).
   */
  private followSwitches(options: RedisOptions): void {
    const preferred = this.preferredSentinel;
    if (preferred && options.sentinels) {
      options.sentinels = [
        ...options.sentinels.filter((s) => sameAddress(toAddress(s), preferred)),
        ...options.sentinels.filter((s) => !sameAddress(toAddress(s), preferred)),
      ];
    }
    const strategy = options.retryStrategy;
    if (typeof strategy !== 'function') return;
    let seen = this.switches;
    options.retryStrategy = (attempt: number) => {
      const delay = strategy(attempt);
      if (typeof delay !== 'number') return delay;
      if (seen !== this.switches) {
        seen = this.switches;
        return 0;
      }
      return Date.now() - this.switchedAt < FOLLOW_WINDOW_MS
        ? Math.min(delay, FOLLOW_DELAY_MS)
        : delay;
    };
  }

  /** `+switch-master` for this group: every connection heads for the new master now. */
  private switched(change: MasterSwitch): void {
    this.switches++;
    this.switchedAt = Date.now();
    this.preferredSentinel = change.sentinel;
    this.emit('switch', change);
    for (const client of this.clients) {
      askSentinelsFirst(client, (s) => sameAddress(toAddress(s), change.sentinel));
      // Waiting out a backoff: it goes now (reconnectNow). Still talking to the old master
      // (alive but demoted): reconnect.
      if (
        !reconnectNow(client) &&
        (client.status === 'ready' || client.status === 'connect') &&
        !sameAddress(remoteOf(client), change.to)
      ) {
        client.disconnect(true);
      }
      // 'connecting': the attempt under way fails or succeeds; a retry after it is immediate.
    }
  }

  /** The command connection is ready: a different server than last time is a failover. */
  private noteMaster(client: Redis): void {
    const now = remoteOf(client);
    if (!now) return;
    const before = this.master;
    this.master = now;
    if (before && !sameAddress(before, now)) this.emit('failover', { from: before, to: now });
  }
}

function toAddress(s: { host?: string; port?: number }): MasterAddress {
  return { host: s.host ?? '127.0.0.1', port: Number(s.port ?? 26379) };
}
