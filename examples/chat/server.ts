/**
 * The chanlayer chat demo: a static page plus the WebSocket endpoint `/ws/chat/<room>/`.
 *
 *   npm start                                   # in-memory layer, http://127.0.0.1:8000/
 *   PORT=8001 npm start -- --redis redis://127.0.0.1:6379
 *   CHANNEL_LAYERS='{"default":{"BACKEND":"channels_redis.core.RedisChannelLayer",
 *                   "CONFIG":{"hosts":[["127.0.0.1",6379]]}}}' npm start
 *
 * Processes on one Redis share rooms, with each other and with Django (`group_send` to
 * `chat_<room>`). `PORT=0` picks a free port; the URL printed once listening is the real one.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  attachConsumers,
  channelLayers,
  getChannelLayer,
  type ChannelLayer,
  type ConsumerRouter,
} from '../../lib/index.ts';
import { ChatConsumer } from './consumers.ts';

const STATIC_DIR = path.join(import.meta.dirname, 'static');
const FILES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/chat.js': ['chat.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8'],
};

export interface ChatServerOptions {
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default `getChannelLayer()` (CHANNEL_LAYERS, else in-memory). */
  layer?: ChannelLayer;
}

export interface ChatServer {
  url: string;
  port: number;
  layer: ChannelLayer;
  server: http.Server;
  router: ConsumerRouter;
  /** Closes sockets (1001), the HTTP server and the layer. */
  close(): Promise<void>;
}

export async function startChatServer(options: ChatServerOptions = {}): Promise<ChatServer> {
  const layer = options.layer ?? getChannelLayer();
  if (!layer) throw new Error('no channel layer configured');
  const host = options.host ?? '127.0.0.1';
  const server = http.createServer((req, res) => void serve(req, res, layer));
  const router = attachConsumers(server, { '/ws/chat/:room/': ChatConsumer }, { layer });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8000, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}/`,
    port,
    layer,
    server,
    router,
    close() {
      closing ??= (async () => {
        const httpClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await router.close(1001);
        server.closeAllConnections();
        await httpClosed;
        await layer.close();
      })();
      return closing;
    },
  };
}

async function serve(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  layer: ChannelLayer,
): Promise<void> {
  const { pathname } = new URL(req.url ?? '/', 'http://localhost');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    return;
  }
  if (pathname === '/api/info') {
    const address = req.socket.localPort;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify({ port: address, pid: process.pid, layer: layer.constructor.name }));
    return;
  }
  const file = FILES[pathname];
  if (!file) {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    return;
  }
  try {
    const body = await fs.readFile(path.join(STATIC_DIR, file[0]));
    res.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${(err as Error).message}\n`);
  }
}

const USAGE = `usage: tsx examples/chat/server.ts [--redis URL] [--pubsub]

  --redis URL   use a RedisChannelLayer on URL (redis://host:port/db) instead of CHANNEL_LAYERS
  --pubsub      with --redis: a RedisPubSubChannelLayer instead
  PORT          listen port (default 8000; 0 = any free port), on 127.0.0.1
  CHANNEL_LAYERS  Django-style JSON layer configuration (default: in-memory)
`;

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: {
        redis: { type: 'string' },
        pubsub: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.redis) {
    channelLayers.configure({
      default: {
        BACKEND: args.pubsub ? 'chanlayer.RedisPubSubChannelLayer' : 'chanlayer.RedisChannelLayer',
        CONFIG: { hosts: [args.redis] },
      },
    });
  }
  const portText = process.env.PORT ?? '8000';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`PORT must be a port number, got "${portText}"\n`);
    process.exit(2);
  }

  const chat = await startChatServer({ port });
  process.stdout.write(`chanlayer chat demo listening on ${chat.url}\n`);
  process.stdout.write(`  layer: ${chat.layer.constructor.name}; Ctrl-C to stop\n`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    process.stdout.write(`${signal}: shutting down\n`);
    // Should cleanup hang, do not hang with it.
    setTimeout(() => {
      process.stderr.write('shutdown took over 10 s; exiting\n');
      process.exit(1);
    }, 10_000).unref();
    const watchingStdin = process.env.CHAT_DEMO_EXIT_WITH_STDIN === '1';
    chat.close().then(
      () => {
        if (watchingStdin) process.stdin.destroy();
        process.stdout.write('stopped\n');
      },
      (err: unknown) => {
        if (watchingStdin) process.stdin.destroy();
        process.stderr.write(`error while shutting down: ${(err as Error).message}\n`);
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // For supervisors (the browser test): stop when the parent's end of stdin closes, which
  // happens however the parent dies, SIGKILL included.
  if (process.env.CHAT_DEMO_EXIT_WITH_STDIN === '1') {
    process.stdin.once('close', () => {
      if (!stopping) stop('stdin closed');
    });
    process.stdin.resume();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`chanlayer chat demo: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
