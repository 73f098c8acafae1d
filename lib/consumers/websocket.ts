/**
 * WebSocket consumers on the `ws` package (Django Channels' `AsyncWebsocketConsumer`).
 *
 *   class Echo extends WebSocketConsumer {
 *     override async receive({ text }) { await this.send({ text: text ?? '' }); }
 *   }
 *   attachConsumers(server, { '/ws/echo/': Echo }, { layer });   // router.ts
 *
 * Lifecycle, as in Django: the consumer gets its channel, then `connect()` runs while the HTTP
 * handshake is still pending. `accept()` completes it; `close()` before `accept()` refuses it
 * (HTTP 403). Client frames call `receive({ text })` / `receive({ bytes })` (or `receiveJson`),
 * layer messages call their type's handler, all one at a time. When the socket closes for any
 * reason `disconnect(code)` runs, then the consumer leaves its groups and deletes its channel.
 *
 * Backpressure: a socket whose client reads slowly accumulates unsent bytes (`bufferedAmount`).
 * Above `highWaterMark` the consumer stops taking messages from the layer (`policy: 'pause'`,
 * the default: they wait in the layer, bounded by its capacity and expiry) or drops what it is
 * asked to send and counts it (`policy: 'drop'`); it also stops reading client frames until the
 * buffer is below `lowWaterMark`. Memory per socket stays around `highWaterMark` plus one
 * handler's output.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import type { Message } from '../types.ts';
import { Consumer, reserveMethodNames, type ConsumerOptions } from './consumer.ts';

/** What the consumer knows about its connection (Django's `scope`). */
export interface WebSocketScope {
  type: 'websocket';
  /** The request path, without the query string. */
  path: string;
  /** Route parameters: `/ws/chat/:room/` gives `{ room }` (Django's `url_route.kwargs`). */
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** Subprotocols the client offered. */
  subprotocols: string[];
  client: { address: string | undefined; port: number | undefined };
  request: IncomingMessage;
}

export interface BackpressureOptions {
  /** Unsent bytes above which the consumer pauses / drops (default 1 MiB). */
  highWaterMark?: number;
  /** Unsent bytes at which a paused consumer goes on (default `highWaterMark / 4`). */
  lowWaterMark?: number;
  /**
   * `'pause'` (default): stop taking layer messages until the socket drains; they wait in the
   * layer (capacity and expiry bound them). `'drop'`: keep going, drop sends while over the
   * mark and count them in `wsCounts.dropped`.
   */
  policy?: 'pause' | 'drop';
  /** Client frames queued for `receive` before the socket stops being read (default 32). */
  maxQueuedFrames?: number;
}

export interface WebSocketConsumerOptions<M extends Message = Message> extends ConsumerOptions<M> {
  scope: WebSocketScope;
  backpressure?: BackpressureOptions;
}

/** What a client frame looks like to `receive`: exactly one of the two is set. */
export interface ReceivedFrame {
  text?: string;
  bytes?: Uint8Array;
}

export type SendData = string | Uint8Array | { text: string } | { bytes: Uint8Array };

type State = 'connecting' | 'open' | 'closing' | 'closed';

/** The router's side of one pending handshake. */
export interface Handshake {
  socket: Duplex;
  /** Completes the handshake; undefined when the client has gone meanwhile. */
  upgrade(subprotocol: string | undefined): Promise<WebSocket | undefined>;
  reject(status: number): void;
  /** Resolves when the raw socket closes before the handshake completed. */
  gone: Promise<void>;
}

/** How the router (router.ts) starts a consumer on its handshake; not part of the public API. */
export const kRun = Symbol('run');

export class WebSocketConsumer<M extends Message = Message> extends Consumer<M> {
  readonly scope: WebSocketScope;
  /** The `ws` socket, once accepted. */
  socket: WebSocket | undefined;
  /** Frames and bytes through this socket; `dropped` counts sends refused by backpressure. */
  readonly wsCounts = {
    received: 0,
    sent: 0,
    sentBytes: 0,
    dropped: 0,
    sendAfterClose: 0,
    pauses: 0,
  };

  private state: State = 'connecting';
  private handshake: Handshake | undefined;
  private readonly highWaterMark: number;
  private readonly lowWaterMark: number;
  private readonly policy: 'pause' | 'drop';
  private readonly maxQueuedFrames: number;
  private drainWaiters: Array<() => void> = [];
  private readPaused = false;
  private closeCode: number | undefined;
  private socketGone!: () => void;
  private readonly socketClosed = new Promise<void>((resolve) => (this.socketGone = resolve));

  constructor(options: WebSocketConsumerOptions<M>) {
    super(options);
    this.scope = options.scope;
    const bp = options.backpressure ?? {};
    this.highWaterMark = bp.highWaterMark ?? 1024 * 1024;
    this.lowWaterMark = Math.min(bp.lowWaterMark ?? this.highWaterMark / 4, this.highWaterMark);
    this.policy = bp.policy ?? 'pause';
    this.maxQueuedFrames = Math.max(1, bp.maxQueuedFrames ?? 32);
  }

  // ---- hooks ------------------------------------------------------------------------------

  /** The handshake is pending: call `accept()` (the default) or `close()` (refuses it, 403). */
  async connect(): Promise<void> {
    await this.accept();
  }

  /**
   * A client frame. The default parses text frames as JSON and calls `receiveJson` when a
   * subclass defines it; otherwise frames are ignored.
   */
  async receive(frame: ReceivedFrame): Promise<void> {
    if (this.receiveJson === WebSocketConsumer.prototype.receiveJson) return;
    if (frame.text === undefined) {
      throw new TypeError(`${this.constructor.name} expects JSON text frames, got a binary frame`);
    }
    await this.receiveJson(JSON.parse(frame.text) as unknown);
  }

  /** A text frame parsed as JSON (when the subclass defines this and keeps `receive`). */
  async receiveJson(_content: unknown): Promise<void> {}

  /** The socket closed (client, server or network): 1000, 1001, 1006 (no close frame), … */
  async disconnect(_code: number): Promise<void> {}

  // ---- actions ----------------------------------------------------------------------------

  /** Completes the handshake, optionally choosing one of the offered subprotocols. */
  async accept(subprotocol?: string): Promise<void> {
    if (this.state !== 'connecting' || !this.handshake) return;
    const handshake = this.handshake;
    this.handshake = undefined;
    const ws = await handshake.upgrade(subprotocol);
    if (!ws) {
      this.state = 'closed';
      return;
    }
    this.socket = ws;
    this.state = 'open';
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) =>
      this.onFrame(data, isBinary),
    );
    ws.on('error', (err) => this.reportError(err, 'socket'));
    ws.once('close', (code: number) => this.onSocketClose(code));
  }

  /**
   * Closes the socket with `code` (default 1000); before `accept()` this refuses the handshake
   * with HTTP 403. `disconnect()` and the cleanup follow when the socket has closed; `closed`
   * resolves after them. Safe to call from a handler.
   */
  override async close(code = 1000, reason?: string): Promise<void> {
    switch (this.state) {
      case 'connecting': {
        this.state = 'closed';
        this.closeCode = 1006;
        const handshake = this.handshake;
        this.handshake = undefined;
        handshake?.reject(code === 1001 ? 503 : 403);
        // Outside the run (e.g. the router shutting down mid-connect) the run finishes up.
        return;
      }
      case 'open':
        this.state = 'closing';
        this.socket!.close(code, reason);
        return;
      default:
        return;
    }
  }

  /** Sends a text (`string` / `{ text }`) or binary (`Uint8Array` / `{ bytes }`) frame. */
  async send(data: SendData): Promise<void> {
    const ws = this.socket;
    if (this.state !== 'open' || !ws || ws.readyState !== WebSocket.OPEN) {
      this.wsCounts.sendAfterClose++;
      return;
    }
    let payload: string | Uint8Array;
    let binary: boolean;
    if (typeof data === 'string' || data instanceof Uint8Array) {
      payload = data;
      binary = typeof data !== 'string';
    } else if (data && typeof (data as { text?: unknown }).text === 'string') {
      payload = (data as { text: string }).text;
      binary = false;
    } else if (data && (data as { bytes?: unknown }).bytes instanceof Uint8Array) {
      payload = (data as { bytes: Uint8Array }).bytes;
      binary = true;
    } else {
      throw new TypeError(
        'send() takes a string, a Uint8Array, { text: string } or { bytes: Uint8Array }',
      );
    }
    if (this.policy === 'drop' && ws.bufferedAmount > this.highWaterMark) {
      this.wsCounts.dropped++;
      return;
    }
    this.wsCounts.sent++;
    this.wsCounts.sentBytes +=
      typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
    ws.send(payload, { binary }, () => this.onFlushed());
    if (ws.bufferedAmount > this.highWaterMark) this.pauseReading();
  }

  /** `send({ text: JSON.stringify(content) })`. */
  sendJson(content: unknown): Promise<void> {
    return this.send({ text: JSON.stringify(content) });
  }

  /** Unsent bytes on the socket right now. */
  get bufferedAmount(): number {
    return this.socket?.bufferedAmount ?? 0;
  }

  // ---- machinery ----------------------------------------------------------------------------

  /** Run by the router for each matched upgrade. */
  async [kRun](handshake: Handshake): Promise<void> {
    this.handshake = handshake;
    void handshake.gone.then(() => {
      if (this.state === 'connecting') {
        this.state = 'closed';
        this.closeCode = 1006;
        this.handshake = undefined;
      }
    });
    try {
      await this.start();
    } catch (err) {
      this.reportError(err, 'start');
      this.state = 'closed';
      this.handshake = undefined;
      handshake.reject(500);
      await super.close();
      return;
    }
    if (this.state !== 'connecting') {
      // Closed (router shutdown) or abandoned by the client while the channel was being made.
      this.socketGone();
      await this.finish(this.closeCode ?? 1006);
      return;
    }
    let connectFailed = false;
    await this.enqueue(async () => {
      try {
        await this.connect();
      } catch (err) {
        connectFailed = true;
        throw err;
      }
    }, 'connect');
    if (this.state === 'connecting') {
      if (!connectFailed) {
        this.logger.warn(
          `chanlayer: ${this.constructor.name}.connect() returned without accept() or close(); refusing the connection`,
        );
      }
      this.state = 'closed';
      this.closeCode = 1006;
      this.handshake = undefined;
      handshake.reject(connectFailed ? 500 : 403);
    }
    if (this.state === 'closed' && this.socket === undefined) {
      // Refused or abandoned before accept: Django still runs disconnect.
      this.socketGone();
      await this.finish(this.closeCode ?? 1006);
    }
  }

  private onFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    this.wsCounts.received++;
    const buf = Array.isArray(data)
      ? Buffer.concat(data)
      : data instanceof ArrayBuffer
        ? Buffer.from(data)
        : data;
    const frame: ReceivedFrame = isBinary ? { bytes: buf } : { text: buf.toString('utf8') };
    void this.enqueue(() => this.receive(frame), 'receive');
    if (this.queued >= this.maxQueuedFrames) this.pauseReading();
  }

  private onSocketClose(code: number): void {
    this.state = 'closed';
    this.socketGone();
    this.releaseDrainWaiters();
    void this.finish(code);
  }

  private async finish(code: number): Promise<void> {
    await this.enqueue(() => this.disconnect(code), 'disconnect');
    await super.close();
  }

  protected override onLayerClosed(): Promise<void> {
    if (this.state === 'open') return this.close(1011);
    return super.close();
  }

  protected override beforeReceive(): Promise<void> | void {
    if (this.policy !== 'pause') return;
    const ws = this.socket;
    if (!ws || this.state !== 'open' || ws.bufferedAmount <= this.highWaterMark) return;
    this.wsCounts.pauses++;
    return new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  protected override onTaskDone(): void {
    this.maybeResumeReading();
  }

  private onFlushed(): void {
    const ws = this.socket;
    if (ws && ws.bufferedAmount > this.lowWaterMark && ws.readyState === WebSocket.OPEN) return;
    this.releaseDrainWaiters();
    this.maybeResumeReading();
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private pauseReading(): void {
    if (this.readPaused || !this.socket) return;
    this.readPaused = true;
    this.socket.pause();
  }

  private maybeResumeReading(): void {
    const ws = this.socket;
    if (!this.readPaused || !ws) return;
    if (this.queued > this.maxQueuedFrames / 2) return;
    if (ws.bufferedAmount > this.lowWaterMark) return;
    this.readPaused = false;
    ws.resume();
  }
}

reserveMethodNames(WebSocketConsumer.prototype);
