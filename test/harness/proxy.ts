/**
 * A TCP proxy in front of a Redis server for tests that need to control the wire: hold the
 * server's replies (a slow handshake), then release them in one chunk, or cut every
 * connection at a chosen moment (a drop mid-handshake).
 */
import net from 'node:net';
import { LOOPBACK } from './ports.ts';

export interface RedisProxy {
  readonly port: number;
  readonly url: string;
  /** While true, server→client bytes are buffered instead of forwarded. */
  hold: boolean;
  /** Forwards everything held so far, per connection in one write. */
  release(): void;
  /** Destroys every proxied connection (both sides); new connections are accepted. */
  cut(): void;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<RedisProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; held: Buffer[] }>();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(targetPort, LOOPBACK);
    const pair = { client, upstream, held: [] as Buffer[] };
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (proxy.hold) pair.held.push(chunk);
      else client.write(chunk);
    });
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  const port = (server.address() as net.AddressInfo).port;
  const proxy: RedisProxy = {
    port,
    url: `redis://${LOOPBACK}:${port}`,
    hold: false,
    release() {
      proxy.hold = false;
      for (const pair of pairs) {
        if (pair.held.length > 0) pair.client.write(Buffer.concat(pair.held.splice(0)));
      }
    },
    cut() {
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
    },
    get accepted() {
      return accepted;
    },
    close() {
      proxy.cut();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
