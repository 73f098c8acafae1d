/**
 * The base consumer (Django Channels' `AsyncConsumer`, the Node way).
 *
 * A consumer owns one channel from `layer.newChannel()` and runs a receive loop on it. Each
 * message is dispatched by its `type`: `'chat.message'` calls the handler map's
 * `'chat.message'` entry, else a method `chat_message` (Django spelling) or `chatMessage`.
 * Handlers run one at a time, in arrival order. `this.groupAdd('room')` joins a group with the
 * consumer's channel; every membership is left again on `close()`, which also aborts the
 * pending receive (the layer guarantees the aborted receive takes no message) and, where the
 * layer has it, calls `layer.deleteChannel(channel)`.
 *
 * A handler that throws, or a message whose type has no handler (`UnhandledMessageType`), is
 * reported — as an `'error'` event when someone listens for it, otherwise logged — and the
 * loop goes on.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { getChannelLayer } from '../channel-layers.ts';
import { LayerClosed } from '../errors.ts';
import type { ChannelLayer, Message } from '../types.ts';

/** A message type no handler exists for. Reported (event or log); the loop continues. */
export class UnhandledMessageType extends Error {
  override name = 'UnhandledMessageType';
  constructor(
    /** The message's `type` (`String(type)` when it was not a string). */
    readonly messageType: string,
    /** The consumer's class name. */
    readonly consumer: string,
    /** The method names that were looked for. */
    readonly tried: readonly string[],
  ) {
    super(
      tried.length === 0
        ? `${consumer} received a message without a string "type" (got ${messageType}); it was skipped`
        : `No handler for message type "${messageType}" on ${consumer}: define ${tried
            .map((n) => `${n}()`)
            .join(' or ')}, or add "${messageType}" to its handlers; the message was skipped`,
    );
  }
}

/** The consumer was used after `close()`. */
export class ConsumerClosed extends Error {
  override name = 'ConsumerClosed';
  constructor(consumer: string) {
    super(`${consumer} is closed`);
  }
}

/** Where consumers log when nobody listens for `'error'`. `console` fits. */
export interface ConsumerLogger {
  warn(message: string, ...rest: unknown[]): void;
  error?(message: string, ...rest: unknown[]): void;
}

/** The handler for the message of type `T` in the union `M`. */
export type MessageHandler<M extends Message, T extends string = M['type']> = (
  message: [Extract<M, { type: T }>] extends [never] ? M : Extract<M, { type: T }>,
) => unknown;

/** `{ 'chat.message': (msg) => … }`, typed by the message union `M`. */
export type HandlerMap<M extends Message = Message> = {
  [T in M['type']]?: MessageHandler<M, T>;
};

export interface ConsumerOptions<M extends Message = Message> {
  /** The layer to use; default `getChannelLayer(layerAlias)`. */
  layer?: ChannelLayer;
  /** Alias for `getChannelLayer` when no `layer` is given (default `'default'`). */
  layerAlias?: string;
  /** Prefix for `layer.newChannel()` (the layer's default when omitted). */
  channelPrefix?: string;
  /** Handlers by message type; consulted before methods. */
  handlers?: HandlerMap<M>;
  /** Used when nobody listens for `'error'` (default `console`). */
  logger?: ConsumerLogger;
}

const BACKOFF_MS = [50, 100, 250, 500, 1000, 2000];

/**
 * Names of the framework's own members. A message type never dispatches to one of them, so a
 * message `{ type: 'close' }` or `{ type: 'group.add' }` cannot call `close()` / `groupAdd()`.
 */
const reservedNames = new Set<string>(['constructor']);

/** Called by subclasses that define framework methods (WebSocketConsumer) to reserve them. */
export function reserveMethodNames(proto: object): void {
  for (const name of Object.getOwnPropertyNames(proto)) reservedNames.add(name);
}

function isAbort(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted || (err instanceof Error && err.name === 'AbortError');
}

export class Consumer<M extends Message = Message> extends EventEmitter {
  /** Groups every instance joins in `start()` (Django's `groups` class attribute). */
  static groups: readonly string[] = [];

  /** The layer this consumer uses (Django: `self.channel_layer`). */
  readonly channelLayer: ChannelLayer;
  /** Groups this consumer is in through `groupAdd` (left automatically on close). */
  readonly memberships: ReadonlySet<string>;
  /** Messages dispatched, skipped for want of a handler, and handlers that threw. */
  readonly counts = { dispatched: 0, unhandled: 0, failed: 0 };

  protected readonly logger: ConsumerLogger;
  private readonly handlers: HandlerMap<M>;
  private readonly channelPrefix: string | undefined;
  private readonly groupSet = new Set<string>();
  private readonly pendingGroupOps = new Set<Promise<unknown>>();
  private readonly stopper = new AbortController();
  private name: string | undefined;
  private started: Promise<this> | undefined;
  private loop: Promise<void> = Promise.resolve();
  private queueTail: Promise<void> = Promise.resolve();
  private queueLength = 0;
  private closing: Promise<void> | undefined;
  private resolveClosed!: () => void;
  /** Resolves once the consumer is fully closed: loop ended, groups left, channel deleted. */
  readonly closed: Promise<void> = new Promise<void>((resolve) => (this.resolveClosed = resolve));

  constructor(options: ConsumerOptions<M> = {}) {
    super();
    const layer = options.layer ?? getChannelLayer(options.layerAlias ?? 'default');
    if (!layer) {
      throw new Error(
        `${new.target.name}: no channel layer configured for alias "${options.layerAlias ?? 'default'}"`,
      );
    }
    this.channelLayer = layer;
    this.handlers = options.handlers ?? {};
    this.channelPrefix = options.channelPrefix;
    this.logger = options.logger ?? console;
    this.memberships = this.groupSet;
  }

  /** The consumer's channel (Django: `self.channel_name`). Throws before `start()` resolved. */
  get channelName(): string {
    if (this.name === undefined) throw new Error(`${this.constructor.name} has not started`);
    return this.name;
  }

  /** True once `close()` has begun. */
  get isClosed(): boolean {
    return this.closing !== undefined;
  }

  /** The signal aborted when the consumer closes (for handlers' own async work). */
  get signal(): AbortSignal {
    return this.stopper.signal;
  }

  /** Handlers queued or running (layer messages and, for sockets, client frames). */
  get queued(): number {
    return this.queueLength;
  }

  /** Takes a channel, joins the static `groups`, starts the receive loop. Idempotent. */
  start(): Promise<this> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<this> {
    if (this.closing) throw new ConsumerClosed(this.constructor.name);
    this.name = await this.channelLayer.newChannel(
      ...(this.channelPrefix === undefined ? [] : [this.channelPrefix]),
    );
    if (this.closing) return this;
    for (const group of (this.constructor as typeof Consumer).groups) await this.groupAdd(group);
    this.loop = this.receiveLoop(this.name);
    return this;
  }

  /** Joins `group` with this consumer's channel; left again automatically on close. */
  async groupAdd(group: string): Promise<void> {
    if (this.closing) throw new ConsumerClosed(this.constructor.name);
    const channel = this.channelName;
    this.groupSet.add(group);
    await this.track(this.channelLayer.groupAdd(group, channel));
  }

  /** Leaves `group`. */
  async groupDiscard(group: string): Promise<void> {
    if (this.name === undefined) return;
    this.groupSet.delete(group);
    await this.track(this.channelLayer.groupDiscard(group, this.name));
  }

  /** `layer.groupSend`, typed by this consumer's message union. */
  groupSend(group: string, message: M): Promise<void> {
    return this.channelLayer.groupSend(group, message);
  }

  /** `layer.send`, typed by this consumer's message union. */
  sendTo(channel: string, message: M): Promise<void> {
    return this.channelLayer.send(channel, message);
  }

  /**
   * Stops the consumer: aborts the pending receive (no message is taken by it), leaves every
   * group joined through `groupAdd`, and deletes the channel where the layer can. Does not wait
   * for a handler that is running (so a handler may call it); `closed` resolves when the loop
   * has ended too. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.stopper.abort();
    try {
      await this.started?.catch(() => undefined);
      // A groupAdd still in flight would otherwise land after the discards below.
      while (this.pendingGroupOps.size > 0) await Promise.allSettled([...this.pendingGroupOps]);
      const channel = this.name;
      if (channel !== undefined) {
        const layer = this.channelLayer as ChannelLayer & {
          deleteChannel?: (channel: string) => Promise<void>;
        };
        const groups = [...this.groupSet];
        this.groupSet.clear();
        const results = await Promise.allSettled(groups.map((g) => layer.groupDiscard(g, channel)));
        if (typeof layer.deleteChannel === 'function') {
          results.push(...(await Promise.allSettled([layer.deleteChannel(channel)])));
        }
        for (const r of results) {
          if (r.status === 'rejected' && !(r.reason instanceof LayerClosed)) {
            this.reportError(r.reason, 'leaving groups on close');
          }
        }
      }
    } finally {
      void this.loop.then(() => {
        this.emit('close');
        this.resolveClosed();
      });
    }
  }

  /**
   * Runs `task` after every task queued before it (handlers never overlap). Errors are reported,
   * never thrown: the returned promise always resolves.
   */
  protected enqueue(task: () => unknown, context: string): Promise<void> {
    this.queueLength++;
    const run = this.queueTail.then(async () => {
      try {
        await task();
      } catch (err) {
        this.counts.failed++;
        this.reportError(err, context);
      } finally {
        this.queueLength--;
        this.onTaskDone();
      }
    });
    this.queueTail = run;
    return run;
  }

  /** Hook: the layer was closed under the consumer. Closes the consumer. */
  protected onLayerClosed(): Promise<void> {
    return this.close();
  }

  /** Hook: a queued task finished (WebSocketConsumer resumes a paused socket here). */
  protected onTaskDone(): void {}

  /** Hook: awaited before each layer receive (WebSocketConsumer waits out backpressure). */
  protected beforeReceive(): Promise<void> | void {}

  /** Finds and runs the handler for `message`. Reports `UnhandledMessageType` when none. */
  protected async dispatch(message: M): Promise<void> {
    const handler = this.handlerFor(message);
    if (handler instanceof UnhandledMessageType) {
      this.counts.unhandled++;
      this.reportError(handler, 'dispatch');
      return;
    }
    this.counts.dispatched++;
    await handler.call(this, message);
  }

  private handlerFor(message: M): ((message: M) => unknown) | UnhandledMessageType {
    const type: unknown = (message as { type?: unknown } | null)?.type;
    if (typeof type !== 'string' || type === '') {
      return new UnhandledMessageType(String(type), this.constructor.name, []);
    }
    const mapped = (this.handlers as Record<string, ((m: M) => unknown) | undefined>)[type];
    if (typeof mapped === 'function' && Object.hasOwn(this.handlers, type)) return mapped;
    const snake = type.replace(/\./g, '_');
    const camel = snake.replace(/_+([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());
    const tried = [...new Set([snake, camel])];
    for (const name of tried) {
      if (name.startsWith('_') || reservedNames.has(name)) continue;
      const method = (this as unknown as Record<string, unknown>)[name];
      if (typeof method === 'function') return method as (m: M) => unknown;
    }
    return new UnhandledMessageType(type, this.constructor.name, tried);
  }

  private async receiveLoop(channel: string): Promise<void> {
    const signal = this.stopper.signal;
    let failures = 0;
    while (!signal.aborted) {
      let message: M;
      try {
        await this.beforeReceive();
        if (signal.aborted) break;
        message = (await this.channelLayer.receive(channel, { signal })) as M;
        failures = 0;
      } catch (err) {
        if (isAbort(err, signal)) break;
        if (err instanceof LayerClosed) {
          void this.onLayerClosed();
          break;
        }
        this.reportError(err, 'receive');
        // A transient layer failure: retry with backoff instead of spinning.
        try {
          await delay(BACKOFF_MS[Math.min(failures++, BACKOFF_MS.length - 1)], undefined, {
            signal,
          });
        } catch {
          break;
        }
        continue;
      }
      // Waiting for our own handler keeps at most one layer message in memory: the rest wait
      // in the layer, which bounds them by capacity and expiry.
      await this.enqueue(() => this.dispatch(message), `handling "${String(message?.type)}"`);
    }
  }

  private track<T>(op: Promise<T>): Promise<T> {
    this.pendingGroupOps.add(op);
    const untrack = (): void => void this.pendingGroupOps.delete(op);
    op.then(untrack, untrack);
    return op;
  }

  /** An `'error'` event when someone listens for it, else a log line. Never throws. */
  protected reportError(err: unknown, context: string): void {
    if (this.listenerCount('error') > 0) {
      this.emit('error', err);
      return;
    }
    const text = `chanlayer: ${this.constructor.name} ${context}: ${
      err instanceof Error ? (err.stack ?? err.message) : String(err)
    }`;
    if (err instanceof UnhandledMessageType) this.logger.warn(`chanlayer: ${err.message}`);
    else if (this.logger.error) this.logger.error(text);
    else this.logger.warn(text);
  }
}

reserveMethodNames(Consumer.prototype);
reserveMethodNames(EventEmitter.prototype);
