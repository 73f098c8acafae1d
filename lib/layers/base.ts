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
] as const;
export type CounterName = (typeof COUNTERS)[number];

export interface CodecShape {
  /** Random bytes before each payload (core layer) or 0 (Pub/Sub, in-memory). */
  prefixLength: number;
  /** Fernet TTL in seconds, or undefined for none. */
  ttlSeconds?: number | undefined;
}

export abstract class BaseLayer extends EventEmitter {
  readonly extensions: readonly string[] = Object.freeze(['groups', 'flush']);
  protected readonly options: ResolvedOptions;
  protected readonly codec: Codec;
  protected readonly logger: Logger;
  protected closed = false;
  private readonly counters: Record<CounterName, number>;

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
    this.counters = Object.fromEntries(COUNTERS.map((n) => [n, 0])) as Record<CounterName, number>;
    if (input?.onDisconnect) this.on('disconnect', input.onDisconnect);
    if (input?.onReconnect) this.on('reconnect', input.onReconnect);
  }

  /** Counters since construction (a copy). */
  stats(): Record<string, number> {
    return { ...this.counters };
  }

  protected count(name: CounterName, by = 1): void {
    this.counters[name] += by;
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

  /** Surfaces a background failure without ever crashing the process. */
  protected reportError(err: unknown, context: string): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.logger.warn(`chanlayer: ${context}: ${errorMessage(err)}`);
  }
}
