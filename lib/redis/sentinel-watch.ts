/**
 * Follows `+switch-master` for one Sentinel group (one shard): one small subscriber connection
 * per sentinel, shared by every connection of the shard (ioredis's own `failoverDetector` opens
 * one set per client, and only helps a client that is still connected: a client whose master
 * died is waiting out its reconnect backoff and hears nothing).
 *
 * Every sentinel that learns of a failover publishes `+switch-master <name> <old ip> <old port>
 * <new ip> <new port>`; the leader does so first, the others within a hello period. The watch
 * listens to all of them and emits `'switch'` once per new master address, as soon as the first
 * one speaks. The shard then reconnects at once instead of at the end of its backoff.
 */
import { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';

export interface MasterAddress {
  host: string;
  port: number;
}

export interface MasterSwitch {
  from: MasterAddress;
  to: MasterAddress;
  /** The sentinel that told us first. */
  sentinel: MasterAddress;
}

const CHANNEL = '+switch-master';

/** `<name> <old ip> <old port> <new ip> <new port>` → the switch, if it is about `masterName`. */
export function parseSwitchMaster(
  payload: string,
  masterName: string,
): { from: MasterAddress; to: MasterAddress } | undefined {
  const parts = payload.trim().split(/\s+/);
  if (parts.length !== 5 || parts[0] !== masterName) return undefined;
  const [, fromHost, fromPort, toHost, toPort] = parts as [string, string, string, string, string];
  return {
    from: { host: fromHost, port: Number(fromPort) },
    to: { host: toHost, port: Number(toPort) },
  };
}

export class SentinelWatch extends EventEmitter {
  private readonly clients: Redis[] = [];
  /** The new master of the last switch reported (each sentinel repeats it). */
  private last: string | undefined;
  private started = false;
  private closed = false;

  constructor(private readonly options: RedisOptions) {
    super();
  }

  /** Opens the subscriber connections (idempotent; nothing happens after close()). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    const { sentinels = [], name = '' } = this.options;
    for (const sentinel of sentinels) {
      const address: MasterAddress = {
        host: sentinel.host ?? '127.0.0.1',
        port: Number(sentinel.port ?? 26379),
      };
      const client = new Redis({
        host: address.host,
        port: address.port,
        username: this.options.sentinelUsername ?? undefined,
        password: this.options.sentinelPassword ?? undefined,
        tls: this.options.sentinelTLS,
        connectionName: 'chanlayer:sentinel-watch',
        connectTimeout: this.options.connectTimeout,
        // Sentinels are cheap to reach; never more than a second without a listener.
        retryStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 4), 1000),
        maxRetriesPerRequest: null,
        enableReadyCheck: false,
        // The subscription is re-made by ioredis after a reconnect.
        autoResubscribe: true,
        lazyConnect: true,
      });
      // A sentinel that is down is not news: the others still speak for the group.
      client.on('error', () => {});
      client.on('message', (channel: string, payload: string) => {
        if (channel !== CHANNEL) return;
        const change = parseSwitchMaster(payload, name);
        if (change) this.switched({ ...change, sentinel: address });
      });
      client.subscribe(CHANNEL).catch(() => {});
      this.clients.push(client);
    }
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients) client.disconnect();
    this.clients.length = 0;
    this.removeAllListeners();
  }

  private switched(change: MasterSwitch): void {
    if (this.closed) return;
    const to = `${change.to.host}:${change.to.port}`;
    if (to === this.last) return;
    this.last = to;
    this.emit('switch', change);
  }
}
