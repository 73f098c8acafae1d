/**
 * One shard = one Redis host or Sentinel group, with a pipelined command connection shared by
 * every operation and a few dedicated connections (blocking reader, subscriber) created on
 * demand. Reports transitions as 'down'/'up' (role) and refuses a Redis older than 5.0
 * (no BZPOPMIN, no CLIENT UNBLOCK).
 */
import { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import type { ShardSpec } from './hosts.ts';

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
}

/** Reconnect delay: exponential from 50 ms to 2 s, with jitter so shards don't stampede. */
export function reconnectDelay(attempt: number): number {
  const base = Math.min(50 * 2 ** Math.min(attempt, 6), 2000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * `disconnect()`, and settle what it leaves pending: a client waiting to reconnect has no socket
 * to close, so ioredis never rejects its queued commands — they would hang, and their
 * `commandTimeout` timers would keep the process alive after close().
 */
function hangUp(client: Redis): void {
  client.disconnect();
  if (client.status === 'reconnecting') {
    (client as unknown as { flushQueue(err: Error): void }).flushQueue(
      new Error('Connection is closed.'),
    );
  }
}

export class RedisTooOld extends Error {
  override name = 'RedisTooOld';
}

export class Shard extends EventEmitter {
  readonly client: Redis;
  private readonly extra = new Set<Redis>();
  private checked: Promise<void> | undefined;
  private readyWait: Promise<void> | undefined;

  constructor(
    readonly index: number,
    readonly spec: ShardSpec,
    private readonly opts: ShardOptions,
  ) {
    super();
    this.client = this.connect('command', {
      enableAutoPipelining: true,
      commandTimeout: opts.commandTimeoutMs,
      ...(opts.lazyConnect ? { lazyConnect: true } : {}),
      ...(opts.failFast
        ? { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false }
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
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Redis ${this.spec.id} (shard ${this.index}) is not reachable: no connection within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    return Promise.race([this.readyWait, timeout]).finally(() => clearTimeout(timer));
  }

  /** A new dedicated connection; `commandTimeout` must exceed any block time used on it. */
  connect(role: Role, extra: RedisOptions = {}): Redis {
    const options: RedisOptions = {
      retryStrategy: reconnectDelay,
      maxRetriesPerRequest: null,
      connectionName: `chanlayer:${role}`,
      ...this.spec.options,
      ...extra,
    };
    const client = this.spec.url ? new Redis(this.spec.url, options) : new Redis(options);
    if (role !== 'command') this.extra.add(client);
    let ready = false;
    let down = false;
    client.on('ready', () => {
      ready = true;
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
    // ioredis prints unhandled 'error' events; connection trouble is reported via 'down'.
    client.on('error', (err: Error) => {
      if (!down) this.emit('connectionError', err, role);
    });
    return client;
  }

  /** Resolves once the server is known to be ≥ 5.0; retried after connection failures. */
  ensureVersion(): Promise<void> {
    this.checked ??= this.client.info('server').then(
      (info) => {
        const version = /redis_version:(\d+)\.(\d+)/.exec(info);
        if (version && Number(version[1]) < 5) {
          throw new RedisTooOld(
            `Redis ${version[1]}.${version[2]} at ${this.spec.id} is too old: chanlayer needs ≥ 5.0 (BZPOPMIN)`,
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

  release(client: Redis): void {
    this.extra.delete(client);
    hangUp(client);
  }

  close(): void {
    for (const client of this.extra) hangUp(client);
    this.extra.clear();
    hangUp(this.client);
    this.removeAllListeners();
  }
}
