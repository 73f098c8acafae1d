/**
 * What every layer shares: resolved options, the codec, counters, the closed state, capacity
 * lookup, and EventEmitter plumbing ('disconnect'/'reconnect', 'error' only when listened to).
 */
import { EventEmitter } from 'node:events';
import {
  capacityFor,
  resolveOptions,
  type LayerOptions,
  type Logger,
  type ResolvedOptions,
} from '../config.ts';
import { errorMessage, LayerClosed } from '../errors.ts';
import type { MasterChange, ShardSetEvents, TroubleSource } from '../redis/shard-set.ts';
import { Codec } from '../serde/codec.ts';
import { createCrypter } from '../serde/crypter.ts';
import { getSerializer } from '../serde/registry.ts';

/** Counter names reported by `stats()`; the README documents each. */
export const COUNTERS = [
  'sent',
  'received',
  'groupSends',
  'groupDeliveries',
  'capacityRejected',
  'groupDropped',
  'localDropped',
  'deletedDropped',
  'expired',
  'unreadable',
  'disconnects',
  'reconnects',
  'failovers',
  'deadRemoved',
  'membershipsRestored',
] as const;
export type CounterName = (typeof COUNTERS)[number];

/** What `stats()` returns: every counter, by name. */
export type LayerStats = { [K in CounterName]: number };

export type { MasterChange };

/** The events a layer emits, with their arguments: a misspelt event name does not compile. */
export interface LayerEvents {
  /** A shard's connection was lost (argument: the shard's index in `hosts`). */
  disconnect: [shard: number];
  /** A shard's connection is back. */
  reconnect: [shard: number];
  /** A Sentinel shard came back on a different master. */
  failover: [shard: number, change: MasterChange];
  /** A background failure; emitted only while someone listens (else logged). */
  error: [err: Error];
}

/**
 * Per-message events for instrumentation (`chanlayer/otel`), called synchronously on the hot
 * path: keep them cheap. A throw is reported, never passed on.
 */
export interface LayerObserver {
  /** Core layer: a message left its Redis queue, `waitMs` after it was sent (its score). */
  queueWait?(waitMs: number): void;
  /** A `groupSend` read its group (core and in-memory layers): the members it sends to. */
  groupFanOut?(members: number): void;
}

export interface CodecShape {
  /** Random bytes before each payload (core layer) or 0 (Pub/Sub, in-memory). */
  prefixLength: number;
  /** Fernet TTL in seconds, or undefined for none. */
  ttlSeconds?: number | undefined;
}

export abstract class BaseLayer extends EventEmitter<LayerEvents> {
  readonly extensions: readonly string[] = Object.freeze(['groups', 'flush']);
  protected readonly options: ResolvedOptions;
  protected readonly codec: Codec;
  protected readonly logger: Logger;
  protected closed = false;
  private readonly counters: LayerStats;
  private readonly observers = new Set<LayerObserver>();

  constructor(input: LayerOptions | undefined, shape: (o: ResolvedOptions) => CodecShape) {
    super();
    this.options = resolveOptions(input);
    const { prefixLength, ttlSeconds } = shape(this.options);
    const keys = this.options.symmetricEncryptionKeys;
    this.codec = new Codec({
      serializer: getSerializer(this.options.serializerFormat),
      crypter:
        keys === undefined
          ? undefined
          : createCrypter({
              keys,
              encryption: this.options.encryption,
              ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
            }),
      prefixLength,
      maxMessageBytes: this.options.maxMessageBytes,
    });
    this.logger = input?.logger ?? console;
    this.counters = Object.fromEntries(COUNTERS.map((n) => [n, 0])) as LayerStats;
    if (input?.onDisconnect) this.on('disconnect', input.onDisconnect);
    if (input?.onReconnect) this.on('reconnect', input.onReconnect);
  }

  /** Counters since construction (a copy). */
  stats(): LayerStats {
    return { ...this.counters };
  }

  protected count(name: CounterName, by = 1): void {
    this.counters[name] += by;
  }

  /** Calls `observer` on per-message events from now on; returns what stops that. */
  observe(observer: LayerObserver): () => void {
    this.observers.add(observer);
    return () => {
      this.observers.delete(observer);
    };
  }

  protected notify(event: keyof LayerObserver, value: number): void {
    if (this.observers.size === 0) return;
    for (const observer of this.observers) {
      try {
        observer[event]?.(value);
      } catch (err) {
        this.reportError(err, `${event} observer`);
      }
    }
  }

  protected assertOpen(): void {
    if (this.closed) throw new LayerClosed(this.constructor.name);
  }

  protected capacityFor(channel: string): number {
    return capacityFor(this.options, channel);
  }

  /** A payload found in Redis that does not decode: counted, logged (`where` it was), skipped. */
  protected skipUnreadable(where: string, err: unknown): void {
    this.count('unreadable');
    this.logger.warn(`chanlayer: skipped an unreadable payload ${where}: ${errorMessage(err)}`);
  }

  /** A failure as the caller gets it: after close(), whatever it was, "the layer is closed". */
  protected failure(err: unknown): unknown {
    return this.closed ? new LayerClosed(this.constructor.name) : err;
  }

  /**
   * How a Redis layer hears from its shards (ShardSet): connection events are counted and
   * emitted — through `safeEmit`, since they come from inside connection handling — and nothing
   * is reported once the layer is closed.
   */
  protected shardEvents(): ShardSetEvents {
    return {
      disconnect: (index) => {
        this.count('disconnects');
        this.safeEmit('disconnect', index);
      },
      reconnect: (index) => {
        this.count('reconnects');
        this.safeEmit('reconnect', index);
      },
      failover: (index, change) => {
        this.count('failovers');
        this.safeEmit('failover', index, change);
      },
      trouble: (shard) => this.reportConnectionTrouble(shard),
      report: (err, context) => this.reportError(err, context),
      closedError: () => (this.closed ? new LayerClosed(this.constructor.name) : undefined),
    };
  }

  /**
   * One report per shard per outage (until `reset`, called when the shard is fully back): a
   * shard never reached yet reports an 'error' (or a log line, with no listener); the loss of
   * one that was reachable is already a 'disconnect' event, so its reason only goes to the
   * logger — `await once(layer, 'reconnect')` is then never rejected by the outage it waits out.
   */
  private reportConnectionTrouble(shard: TroubleSource): { reset(): void } {
    let reached = false;
    let reported = false;
    shard.client.once('ready', () => {
      reached = true;
    });
    shard.on('connectionError', (err: Error) => {
      if (this.closed || reported) return;
      reported = true;
      if (reached) this.logger.warn(`chanlayer: ${err.message}`);
      else this.reportError(err, 'cannot connect');
    });
    return {
      reset: () => {
        reached = true;
        reported = false;
      },
    };
  }

  /**
   * Emits a connection event from inside connection handling: a listener that throws must not
   * break it (nor crash the process from an ioredis callback); the throw is reported instead.
   */
  private safeEmit<K extends 'disconnect' | 'reconnect' | 'failover'>(
    event: K,
    ...args: LayerEvents[K]
  ): void {
    try {
      (this.emit as (event: K, ...args: LayerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.reportError(err, `'${event}' listener`);
    }
  }

  /** Surfaces a background failure without ever crashing the process. */
  protected reportError(err: unknown, context: string): void {
    if (this.listenerCount('error') > 0)
      this.emit('error', err instanceof Error ? err : new Error(errorMessage(err)));
    else this.logger.warn(`chanlayer: ${context}: ${errorMessage(err)}`);
  }
}
