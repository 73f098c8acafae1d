/**
 * `attachConsumers`: routes a server's WebSocket upgrades to consumer classes by path, answers
 * what it cannot route (404, 503 while closing, 500 when a consumer cannot be built), reads the
 * raw socket until the consumer answers the handshake, and closes every consumer it started.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type ServerOptions } from 'ws';
import { getChannelLayer } from '../channel-layers.ts';
import type { ChannelLayer } from '../types.ts';
import type { ConsumerLogger } from './consumer.ts';
import {
  kRun,
  WebSocketConsumer,
  type BackpressureOptions,
  type Handshake,
  type WebSocketConsumerOptions,
  type WebSocketScope,
} from './websocket.ts';

export type WebSocketConsumerClass = new (
  options: WebSocketConsumerOptions<never>,
) => WebSocketConsumer<never>;

/**
 * Path → consumer class. String patterns match the whole path (a trailing slash is optional);
 * `:name` matches one segment into `scope.params.name`. RegExps match `scope.path`; their
 * named groups become params.
 */
export type Routes =
  Record<string, WebSocketConsumerClass> | Array<[string | RegExp, WebSocketConsumerClass]>;

export interface AttachOptions {
  /** The layer for every consumer; default `getChannelLayer(layerAlias)`. */
  layer?: ChannelLayer;
  layerAlias?: string;
  backpressure?: BackpressureOptions;
  /** Largest client frame accepted, bytes (default 1 MiB; larger closes with 1009). */
  maxPayload?: number;
  /** How long `close()` waits for sockets to close before terminating them (default 5000 ms). */
  closeTimeoutMs?: number;
  logger?: ConsumerLogger;
  /** Extra `ws` server options (`perMessageDeflate`, …). */
  ws?: Omit<ServerOptions, 'noServer' | 'server' | 'port' | 'host' | 'path' | 'handleProtocols'>;
}

export interface RouterStats {
  /** Consumers in connect() or open. */
  active: number;
  accepted: number;
  refused: number;
  /** Upgrade requests for a path no route matched (answered 404 unless another listener exists). */
  unmatched: number;
  /** Sends dropped by backpressure (policy 'drop'), over every consumer so far. */
  dropped: number;
  /** Times a consumer paused taking layer messages for a slow socket. */
  pauses: number;
}

export interface ConsumerRouter {
  readonly wss: WebSocketServer;
  /** Consumers currently running. */
  readonly consumers: ReadonlySet<WebSocketConsumer<never>>;
  stats(): RouterStats;
  /** Stops accepting, closes every socket with `code` (default 1001) and waits for cleanup. */
  close(code?: number): Promise<void>;
}

interface CompiledRoute {
  match(path: string): Record<string, string> | undefined;
  Consumer: WebSocketConsumerClass;
}

function compileRoute(pattern: string | RegExp, Cls: WebSocketConsumerClass): CompiledRoute {
  if (typeof Cls !== 'function' || !(Cls.prototype instanceof WebSocketConsumer)) {
    throw new TypeError(`route ${String(pattern)}: expected a WebSocketConsumer subclass`);
  }
  let re: RegExp;
  if (pattern instanceof RegExp) {
    re = pattern;
  } else {
    if (!pattern.startsWith('/')) throw new TypeError(`route "${pattern}" must start with "/"`);
    const body = pattern
      .replace(/\/$/, '')
      .split('/')
      .map((seg) =>
        /^:[A-Za-z_$][\w$]*$/.test(seg)
          ? `(?<${seg.slice(1)}>[^/]+)`
          : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
      )
      .join('/');
    re = new RegExp(`^${body}/?$`);
  }
  return {
    Consumer: Cls,
    match(path) {
      const m = re.exec(path);
      if (!m) return undefined;
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.groups ?? {})) {
        if (v === undefined) continue;
        try {
          params[k] = decodeURIComponent(v);
        } catch {
          return undefined;
        }
      }
      return params;
    },
  };
}

const KEY = /^[+/0-9A-Za-z]{22}==$/;

/** Whether `ws` would accept this handshake (else it answers the error itself). */
function wellFormed(req: IncomingMessage): boolean {
  const version = Number(req.headers['sec-websocket-version']);
  return (
    req.method === 'GET' &&
    req.headers.upgrade?.toLowerCase() === 'websocket' &&
    KEY.test(req.headers['sec-websocket-key'] ?? '') &&
    (version === 13 || version === 8)
  );
}

const STATUS_TEXT: Record<number, string> = {
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** Answers a pending upgrade with an HTTP error and closes the socket once it is written. */
function refuse(socket: Duplex, status: number): void {
  if (!socket.writable || socket.destroyed) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
  );
}

/**
 * Serves `routes` on `server`'s WebSocket upgrades. Upgrades for other paths get 404, unless
 * the server has other `'upgrade'` listeners (then they are left to them).
 */
export function attachConsumers(
  server: HttpServer | HttpsServer,
  routes: Routes,
  options: AttachOptions = {},
): ConsumerRouter {
  const compiled = (Array.isArray(routes) ? routes : Object.entries(routes)).map(([p, C]) =>
    compileRoute(p, C),
  );
  const layer = options.layer ?? getChannelLayer(options.layerAlias ?? 'default');
  if (!layer)
    throw new Error(
      `attachConsumers: no channel layer for alias "${options.layerAlias ?? 'default'}"`,
    );
  const logger = options.logger ?? console;
  const subprotocolFor = new WeakMap<IncomingMessage, string>();
  const wss = new WebSocketServer({
    ...options.ws,
    noServer: true,
    clientTracking: false,
    maxPayload: options.maxPayload ?? 1024 * 1024,
    handleProtocols: (_offered, req) => subprotocolFor.get(req) ?? false,
  });
  const consumers = new Set<WebSocketConsumer<never>>();
  const counts = { accepted: 0, refused: 0, unmatched: 0, dropped: 0, pauses: 0 };
  let closing = false;

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let route: CompiledRoute | undefined;
    let params: Record<string, string> | undefined;
    for (const r of compiled) {
      params = r.match(url.pathname);
      if (params) {
        route = r;
        break;
      }
    }
    if (!route || !params) {
      counts.unmatched++;
      if (server.listenerCount('upgrade') === 1) refuse(socket, 404);
      return;
    }
    if (closing) return refuse(socket, 503);
    if (!wellFormed(req)) {
      // Let ws answer the precise 400/405/426.
      wss.handleUpgrade(req, socket, head, (ws) => ws.terminate());
      return;
    }
    const swallow = (): void => {};
    socket.on('error', swallow);
    const scope: WebSocketScope = {
      type: 'websocket',
      path: url.pathname,
      params,
      query: url.searchParams,
      headers: req.headers,
      subprotocols: (req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      client: { address: req.socket.remoteAddress, port: req.socket.remotePort },
      request: req,
    };
    let consumer: WebSocketConsumer<never>;
    try {
      consumer = new route.Consumer({
        layer,
        scope,
        logger,
        ...(options.backpressure ? { backpressure: options.backpressure } : {}),
      });
    } catch (err) {
      logger.warn(`chanlayer: could not create ${route.Consumer.name}: ${(err as Error).message}`);
      counts.refused++;
      socket.removeListener('error', swallow);
      return refuse(socket, 500);
    }
    consumers.add(consumer);
    // Until the handshake is answered, read the socket ourselves: an unread socket never
    // reports the FIN of a client that gave up. Bytes sent early (there should be none) are
    // kept for ws, up to a limit.
    const early: Buffer[] = head.length > 0 ? [Buffer.from(head)] : [];
    let earlyBytes = head.length;
    let settled = false;
    let markGone!: () => void;
    const gone = new Promise<void>((resolve) => (markGone = resolve));
    const onData = (chunk: Buffer): void => {
      earlyBytes += chunk.length;
      if (earlyBytes > 64 * 1024) socket.destroy();
      else early.push(chunk);
    };
    const onGone = (): void => {
      if (settled) return;
      markGone();
      socket.destroy(); // a client that half-closed cannot complete a handshake
    };
    socket.on('data', onData);
    socket.once('end', onGone);
    socket.once('close', onGone);
    const unwatch = (): void => {
      settled = true;
      socket.removeListener('data', onData);
      socket.removeListener('end', onGone);
      socket.removeListener('close', onGone);
      socket.removeListener('error', swallow);
    };
    const handshake: Handshake = {
      socket,
      gone,
      upgrade: (subprotocol) =>
        new Promise((resolve) => {
          unwatch();
          if (!socket.readable || !socket.writable || socket.destroyed) {
            socket.destroy();
            return resolve(undefined);
          }
          if (subprotocol !== undefined) subprotocolFor.set(req, subprotocol);
          counts.accepted++;
          // Synchronous up to ws's own 'data' listener, so no byte is lost in between.
          wss.handleUpgrade(req, socket, Buffer.concat(early), (ws) => resolve(ws));
        }),
      reject: (status) => {
        unwatch();
        counts.refused++;
        refuse(socket, status);
      },
    };
    void consumer.closed.then(() => {
      consumers.delete(consumer);
      counts.dropped += consumer.wsCounts.dropped;
      counts.pauses += consumer.wsCounts.pauses;
    });
    void consumer[kRun](handshake);
  };
  server.on('upgrade', onUpgrade);

  return {
    wss,
    consumers,
    stats() {
      let dropped = counts.dropped;
      let pauses = counts.pauses;
      for (const c of consumers) {
        dropped += c.wsCounts.dropped;
        pauses += c.wsCounts.pauses;
      }
      return {
        active: consumers.size,
        accepted: counts.accepted,
        refused: counts.refused,
        unmatched: counts.unmatched,
        dropped,
        pauses,
      };
    },
    async close(code = 1001) {
      closing = true;
      server.removeListener('upgrade', onUpgrade);
      const all = [...consumers];
      for (const c of all) void c.close(code);
      const done = Promise.all(all.map((c) => c.closed));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), options.closeTimeoutMs ?? 5000);
      });
      try {
        if (await Promise.race([done.then(() => false), timedOut])) {
          for (const c of all) c.socket?.terminate();
          await done;
        }
      } finally {
        clearTimeout(timer);
      }
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
