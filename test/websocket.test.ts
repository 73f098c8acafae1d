/**
 * WebSocketConsumer + attachConsumers against a real http.Server and real `ws` clients on
 * 127.0.0.1: handshake (accept, refuse, subprotocols, routing), frames (text, binary, JSON),
 * layer messages to the socket, disconnect cleanup, server shutdown, and backpressure bounds.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import path from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { startChatServer, type ChatServer } from '../examples/chat/server.ts';
import {
  InMemoryChannelLayer,
  RedisChannelLayer,
  RedisPubSubChannelLayer,
  WebSocketConsumer,
  attachConsumers,
  type AttachOptions,
  type ConsumerRouter,
  type Message,
  type ReceivedFrame,
  type Routes,
} from '../lib/index.ts';
import { startRedis, type RedisGroup } from './harness/redis.ts';
import type { ExpiringMemberships } from '../lib/memberships.ts';

interface Served {
  url: string;
  router: ConsumerRouter;
  server: http.Server;
  close(): Promise<void>;
}

async function serve(routes: Routes, options: AttachOptions): Promise<Served> {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const router = attachConsumers(server, routes, options);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    router,
    server,
    async close() {
      await router.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Opens a client; rejects with the HTTP status when the handshake is refused. */
function open(url: string, protocols?: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode }));
      res.resume();
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const onClose = (code: number): void => reject(new Error(`closed ${code} before a message`));
    ws.once('message', (data: Buffer, isBinary: boolean) => {
      ws.removeListener('close', onClose);
      resolve({ data, isBinary });
    });
    ws.once('close', onClose);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -1, reason: '' });
  return new Promise((resolve) =>
    ws.once('close', (code: number, reason: Buffer) =>
      resolve({ code, reason: reason.toString() }),
    ),
  );
}

function deferred<T = void>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function groupCount(layer: InMemoryChannelLayer): number {
  return (layer as unknown as { groups: ExpiringMemberships }).groups.names().length;
}

function quietLogger(): { lines: string[]; warn(m: string): void; error(m: string): void } {
  const lines: string[] = [];
  return { lines, warn: (m) => void lines.push(m), error: (m) => void lines.push(m) };
}

/** Every server-side consumer created, in order, with a promise of its disconnect code. */
const created: Array<{ consumer: WebSocketConsumer<Message>; disconnected: Promise<number> }> = [];

class Echo extends WebSocketConsumer {
  private readonly gone = deferred<number>();
  constructor(...args: ConstructorParameters<typeof WebSocketConsumer<Message>>) {
    super(...args);
    created.push({ consumer: this, disconnected: this.gone.promise });
  }
  override async connect(): Promise<void> {
    await this.groupAdd('everyone');
    const wanted = this.scope.subprotocols.find((p) => p === 'chat.v2');
    await this.accept(wanted);
  }
  override async receive({ text, bytes }: ReceivedFrame): Promise<void> {
    if (text === 'close-me') return this.close(4000, 'asked to');
    if (text === 'scope') {
      return this.sendJson({
        path: this.scope.path,
        params: this.scope.params,
        q: this.scope.query.get('q'),
        channel: this.channelName,
      });
    }
    if (text !== undefined) return this.send({ text: `echo:${text}` });
    return this.send({ bytes: Buffer.concat([Buffer.from('echo:'), bytes!]) });
  }
  async announce(msg: Message): Promise<void> {
    await this.sendJson({ announce: msg.text });
  }
  override async disconnect(code: number): Promise<void> {
    this.gone.resolve(code);
  }
}

class JsonEcho extends WebSocketConsumer {
  override async receiveJson(content: unknown): Promise<void> {
    await this.sendJson({ got: content });
  }
}

class Refuser extends WebSocketConsumer {
  override async connect(): Promise<void> {
    await this.close();
  }
}

class Undecided extends WebSocketConsumer {
  override async connect(): Promise<void> {}
}

class Broken extends WebSocketConsumer {
  override async connect(): Promise<void> {
    throw new Error('connect failed on purpose');
  }
}

describe('WebSocketConsumer over a real http.Server', () => {
  let layer: InMemoryChannelLayer;
  let served: Served;
  const logger = quietLogger();

  before(async () => {
    layer = new InMemoryChannelLayer();
    served = await serve(
      {
        '/ws/echo/:room/': Echo,
        '/ws/json/': JsonEcho,
        '/ws/refuse/': Refuser,
        '/ws/undecided/': Undecided,
        '/ws/broken/': Broken,
      },
      { layer, logger },
    );
  });
  after(async () => {
    await served.close();
    await layer.close();
  });

  test('accept, text and binary echo, route params, query, subprotocol', async () => {
    const ws = await open(`${served.url}/ws/echo/lobby/?q=42`, ['chat.v1', 'chat.v2']);
    assert.equal(ws.protocol, 'chat.v2');
    ws.send('hello');
    const text = await nextMessage(ws);
    assert.equal(text.isBinary, false);
    assert.equal(text.data.toString(), 'echo:hello');

    ws.send(Buffer.from([0, 1, 2, 255]));
    const bin = await nextMessage(ws);
    assert.equal(bin.isBinary, true);
    assert.deepEqual([...bin.data], [...Buffer.from('echo:'), 0, 1, 2, 255]);

    ws.send('scope');
    const scope = JSON.parse((await nextMessage(ws)).data.toString());
    assert.equal(scope.path, '/ws/echo/lobby/');
    assert.deepEqual(scope.params, { room: 'lobby' });
    assert.equal(scope.q, '42');
    assert.match(scope.channel, /^specific\./);
    ws.close();
    await closed(ws);
  });

  test('a trailing slash is optional and params are URL-decoded', async () => {
    const ws = await open(`${served.url}/ws/echo/a%2Eb`);
    ws.send('scope');
    assert.deepEqual(JSON.parse((await nextMessage(ws)).data.toString()).params, { room: 'a.b' });
    ws.close();
    await closed(ws);
  });

  test('receiveJson / sendJson', async () => {
    const ws = await open(`${served.url}/ws/json/`);
    ws.send(JSON.stringify({ message: 'hi', n: [1, 2] }));
    assert.deepEqual(JSON.parse((await nextMessage(ws)).data.toString()), {
      got: { message: 'hi', n: [1, 2] },
    });
    ws.send('not json');
    ws.send(JSON.stringify('still alive'));
    // The bad frame is reported (logged) and the consumer keeps going.
    assert.deepEqual(JSON.parse((await nextMessage(ws)).data.toString()), { got: 'still alive' });
    assert.ok(logger.lines.some((l) => /JsonEcho receive: SyntaxError/.test(l)));
    ws.close();
    await closed(ws);
  });

  test('a group message reaches every socket in the group through its handler', async () => {
    const a = await open(`${served.url}/ws/echo/x/`);
    const b = await open(`${served.url}/ws/echo/y/`);
    const [ma, mb] = [nextMessage(a), nextMessage(b)];
    await layer.groupSend('everyone', { type: 'announce', text: 'dinner' });
    assert.deepEqual(JSON.parse((await ma).data.toString()), { announce: 'dinner' });
    assert.deepEqual(JSON.parse((await mb).data.toString()), { announce: 'dinner' });
    a.close();
    b.close();
    await Promise.all([closed(a), closed(b)]);
  });

  test('close() before accept() refuses the handshake with 403', async () => {
    await assert.rejects(open(`${served.url}/ws/refuse/`), { status: 403 });
  });

  test('connect() neither accepting nor closing is refused (403) with a warning', async () => {
    await assert.rejects(open(`${served.url}/ws/undecided/`), { status: 403 });
    assert.ok(logger.lines.some((l) => /Undecided\.connect\(\) returned without accept/.test(l)));
  });

  test('connect() throwing refuses with 500 and is reported', async () => {
    await assert.rejects(open(`${served.url}/ws/broken/`), { status: 500 });
    assert.ok(logger.lines.some((l) => /connect failed on purpose/.test(l)));
  });

  test('an unknown path gets 404; a malformed upgrade gets ws’s 400', async () => {
    await assert.rejects(open(`${served.url}/ws/nope/`), { status: 404 });
    const status = await new Promise<number | undefined>((resolve) => {
      const req = http.request(`${served.url.replace('ws:', 'http:')}/ws/json/`, {
        headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13' },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(undefined));
      req.end();
    });
    assert.equal(status, 400);
    assert.ok(served.router.stats().unmatched >= 1);
  });

  test('client close: disconnect(code) runs, then groups and channel are gone', async () => {
    const before = created.length;
    const ws = await open(`${served.url}/ws/echo/bye/`);
    const entry = created[before]!;
    assert.equal(groupCount(layer) > 0, true);
    ws.close(4001, 'leaving');
    assert.equal(await entry.disconnected, 4001);
    await entry.consumer.closed;
    assert.equal(entry.consumer.memberships.size, 0);
    assert.equal(served.router.consumers.has(entry.consumer), false);
  });

  test('close(code) from a handler closes the socket; disconnect gets the code', async () => {
    const before = created.length;
    const ws = await open(`${served.url}/ws/echo/x/`);
    const entry = created[before]!;
    const gone = closed(ws);
    ws.send('close-me');
    assert.deepEqual(await gone, { code: 4000, reason: 'asked to' });
    assert.equal(await entry.disconnected, 4000);
    await entry.consumer.closed;
  });

  test('a client that vanishes (no close frame) gives disconnect(1006) and full cleanup', async () => {
    const before = created.length;
    const ws = await open(`${served.url}/ws/echo/x/`);
    const entry = created[before]!;
    ws.terminate();
    assert.equal(await entry.disconnected, 1006);
    await entry.consumer.closed;
    assert.equal(entry.consumer.memberships.size, 0);
  });

  test('a client gone while connect() still runs: disconnect(1006), nothing left', async () => {
    const gate = deferred();
    const entered = deferred();
    const rawSocketClosed = deferred();
    const gone = deferred<number>();
    class Slow extends WebSocketConsumer {
      static last: Slow | undefined;
      override async connect(): Promise<void> {
        Slow.last = this;
        this.scope.request.socket.once('close', () => rawSocketClosed.resolve());
        await this.groupAdd('slow');
        entered.resolve();
        await gate.promise;
        await this.accept(); // the client is gone: nothing to accept
      }
      override async disconnect(code: number): Promise<void> {
        gone.resolve(code);
      }
    }
    const extra = await serve({ '/slow/': Slow }, { layer, logger });
    const ws = new WebSocket(`${extra.url}/slow/`);
    ws.on('error', () => {});
    ws.on('upgrade', () => assert.fail('the handshake must not complete'));
    // The client gives up while the server's connect() is still waiting.
    ws.on('unexpected-response', () => assert.fail('no response expected'));
    await entered.promise;
    ws.terminate();
    await rawSocketClosed.promise;
    gate.resolve();
    assert.equal(await gone.promise, 1006);
    const instance = Slow.last!;
    await instance.closed;
    assert.equal(instance.socket, undefined);
    assert.equal(instance.memberships.size, 0);
    assert.equal(extra.router.consumers.size, 0);
    await extra.close();
  });

  test('200 connections opened and closed leave no channel, group, consumer or handle', async () => {
    const own = new InMemoryChannelLayer();
    const resources = countResources();
    const extra = await serve({ '/ws/echo/:room/': Echo }, { layer: own, logger });
    const clients = await Promise.all(
      Array.from({ length: 200 }, (_, i) => open(`${extra.url}/ws/echo/r${i % 7}/`)),
    );
    assert.equal(extra.router.consumers.size, 200);
    for (const c of clients) c.close();
    await Promise.all(clients.map(closed));
    await Promise.all([...extra.router.consumers].map((c) => c.closed));
    assert.equal(extra.router.consumers.size, 0);
    assert.equal(own.activeChannels, 0);
    assert.equal(groupCount(own), 0);
    await extra.close();
    await own.close();
    assert.deepEqual(countResources(), resources);
  });

  test('router.close() closes open sockets with 1001 and waits for cleanup', async () => {
    const extra = await serve({ '/ws/echo/:room/': Echo }, { layer, logger });
    const ws = await open(`${extra.url}/ws/echo/z/`);
    const gone = closed(ws);
    await extra.close();
    assert.equal((await gone).code, 1001);
    assert.equal(extra.router.consumers.size, 0);
  });
});

describe('backpressure', () => {
  const PAYLOAD = 64 * 1024;
  const HWM = 256 * 1024;

  /** Sends each layer message's payload as a binary frame; records the socket's peak buffer. */
  class Sink extends WebSocketConsumer {
    static last: Sink | undefined;
    peakBuffered = 0;
    override async connect(): Promise<void> {
      Sink.last = this;
      await this.groupAdd('flood');
      await this.accept();
    }
    async chunk(msg: Message): Promise<void> {
      await this.send({ bytes: msg.payload as Uint8Array });
      this.peakBuffered = Math.max(this.peakBuffered, this.bufferedAmount);
    }
  }

  /** A client that does not read; returns the seq numbers it got once resumed. */
  async function flood(policy: 'pause' | 'drop'): Promise<{
    sink: Sink;
    layer: InMemoryChannelLayer;
    received: number[];
    served: Served;
  }> {
    const layer = new InMemoryChannelLayer({ capacity: 50 });
    const served = await serve(
      { '/flood/': Sink },
      { layer, backpressure: { highWaterMark: HWM, policy }, logger: quietLogger() },
    );
    const ws = await open(`${served.url}/flood/`);
    const sink = Sink.last!;
    ws.pause(); // a client that stopped reading
    const received: number[] = [];
    ws.on('message', (data: Buffer) => received.push(data.readUInt32BE(0)));

    const payload = Buffer.alloc(PAYLOAD, 7);
    for (let seq = 0; seq < 1500; seq++) {
      payload.writeUInt32BE(seq, 0);
      await layer.groupSend('flood', { type: 'chunk', payload });
      // Give the consumer and the socket their turns, as a busy server would.
      if (seq % 8 === 0) await tick();
    }
    const stats = layer.stats();
    // Everything the consumer took from the layer was sent or (policy 'drop') dropped; once the
    // client reads again, exactly the sent frames arrive.
    const expected = new Promise<void>((resolve) => {
      const check = (): void => {
        const { sent, dropped } = sink.wsCounts;
        if (sent + dropped === stats.groupDeliveries && received.length === sent) resolve();
      };
      ws.on('message', check);
      check();
    });
    ws.resume();
    await expected;
    assert.ok(stats.groupDeliveries! > 0);
    ws.close();
    await closed(ws);
    await sink.closed;
    return { sink, layer, received, served };
  }

  test("policy 'pause': the socket buffer stays under the mark, the layer holds the rest", async () => {
    const { sink, layer, received, served } = await flood('pause');
    assert.ok(
      sink.peakBuffered <= HWM + PAYLOAD + 64,
      `peak ${sink.peakBuffered} > ${HWM} + one message`,
    );
    assert.ok(sink.wsCounts.pauses > 0, 'the consumer paused');
    assert.equal(sink.wsCounts.dropped, 0);
    // While paused the layer's capacity (50) applied: the excess was dropped and counted there.
    assert.ok(layer.stats().groupDropped! > 0);
    assert.equal(received.length, layer.stats().groupDeliveries);
    for (let i = 1; i < received.length; i++) assert.ok(received[i]! > received[i - 1]!);
    assert.ok(served.router.stats().pauses > 0);
    await served.close();
    await layer.close();
  });

  test("policy 'drop': the socket buffer stays under the mark, drops are counted", async () => {
    const { sink, layer, received, served } = await flood('drop');
    assert.ok(
      sink.peakBuffered <= HWM + PAYLOAD + 64,
      `peak ${sink.peakBuffered} > ${HWM} + one message`,
    );
    assert.ok(sink.wsCounts.dropped > 0, 'sends were dropped');
    assert.equal(sink.wsCounts.pauses, 0);
    assert.equal(received.length, sink.wsCounts.sent);
    assert.equal(sink.wsCounts.sent + sink.wsCounts.dropped, layer.stats().groupDeliveries);
    for (let i = 1; i < received.length; i++) assert.ok(received[i]! > received[i - 1]!);
    assert.equal(served.router.stats().dropped, sink.wsCounts.dropped);
    await served.close();
    await layer.close();
  });

  test('a flood of client frames is read only as fast as receive() handles them', async () => {
    const LIMIT = 8;
    const FRAMES = 600;
    const gate = deferred();
    const queuedAtLimit = deferred<boolean>();
    const seen: number[] = [];
    let peakQueued = 0;
    class Slow extends WebSocketConsumer {
      override async connect(): Promise<void> {
        await this.accept();
        this.socket!.on('message', () => {
          peakQueued = Math.max(peakQueued, this.queued);
          if (this.queued >= LIMIT) queuedAtLimit.resolve(this.socket!.isPaused);
        });
      }
      override async receive({ text }: ReceivedFrame): Promise<void> {
        await gate.promise;
        seen.push(Number(text!.slice(0, 8)));
        if (seen.length === FRAMES) await this.send('done');
      }
    }
    const layer = new InMemoryChannelLayer();
    const served = await serve(
      { '/slow/': Slow },
      { layer, backpressure: { maxQueuedFrames: LIMIT }, logger: quietLogger() },
    );
    const ws = await open(`${served.url}/slow/`);
    const filler = 'x'.repeat(16 * 1024);
    for (let i = 0; i < FRAMES; i++) ws.send(String(i).padStart(8, '0') + filler);
    assert.equal(await queuedAtLimit.promise, true, 'the server stopped reading the socket');
    const done = nextMessage(ws);
    gate.resolve();
    assert.equal((await done).data.toString(), 'done');
    assert.deepEqual(
      seen,
      Array.from({ length: FRAMES }, (_, i) => i),
    );
    // One TCP read can carry a few frames past the limit; never the whole flood.
    assert.ok(peakQueued <= LIMIT + 16, `peak queue ${peakQueued}`);
    ws.close();
    await closed(ws);
    await served.close();
    await layer.close();
  });
});

describe('chat demo: two servers on one Redis, and Django (no browser)', () => {
  const execFileAsync = promisify(execFile);
  const SEND = path.join(import.meta.dirname, 'fixtures', 'django_chat_send.py');
  let redis: RedisGroup;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis.stop());

  for (const kind of ['core', 'pubsub'] as const) {
    test(`${kind} layer: rooms are shared across processes and reachable from channels_redis`, async () => {
      const Layer = kind === 'core' ? RedisChannelLayer : RedisPubSubChannelLayer;
      const servers: ChatServer[] = await Promise.all([
        startChatServer({ port: 0, layer: new Layer({ hosts: redis.urls }) }),
        startChatServer({ port: 0, layer: new Layer({ hosts: redis.urls }) }),
      ]);
      try {
        const wsUrl = (s: ChatServer, room: string): string =>
          `${s.url.replace('http:', 'ws:')}ws/chat/${room}/`;
        const a = await open(wsUrl(servers[0]!, 'lobby'));
        const b = await open(wsUrl(servers[1]!, 'lobby'));
        const other = await open(wsUrl(servers[1]!, 'other'));
        await assert.rejects(open(wsUrl(servers[0]!, 'bad%20room')), { status: 403 });

        const atB = nextMessage(b);
        const atA = nextMessage(a);
        a.send(JSON.stringify({ message: `hi from A (${kind})` }));
        assert.deepEqual(JSON.parse((await atB).data.toString()), {
          message: `hi from A (${kind})`,
        });
        assert.deepEqual(JSON.parse((await atA).data.toString()), {
          message: `hi from A (${kind})`,
        });

        const fromDjango = `hello from channels_redis.${kind}`;
        const both = Promise.all([nextMessage(a), nextMessage(b)]);
        const { stdout } = await execFileAsync(
          '/usr/bin/python3',
          [SEND, redis.urls[0]!, 'chat_lobby', fromDjango, kind],
          { timeout: 30_000 },
        );
        assert.equal(stdout.trim(), 'sent');
        for (const m of await both) {
          assert.deepEqual(JSON.parse(m.data.toString()), { message: fromDjango });
        }

        // 'other' got nothing of the lobby: its first message is its own.
        const own = nextMessage(other);
        other.send(JSON.stringify({ message: 'other room' }));
        assert.deepEqual(JSON.parse((await own).data.toString()), { message: 'other room' });

        for (const c of [a, b, other]) c.close();
        await Promise.all([a, b, other].map(closed));
      } finally {
        await Promise.all(servers.map((s) => s.close()));
      }
    });
  }
});

function countResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
