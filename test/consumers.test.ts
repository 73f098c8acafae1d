/** Consumer: dispatch by type, unknown types, errors, group helpers, close, and leaks. */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, describe, test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import {
  Consumer,
  ConsumerClosed,
  InMemoryChannelLayer,
  RedisChannelLayer,
  UnhandledMessageType,
  type ChannelLayer,
  type ConsumerLogger,
  type Message,
} from '../lib/index.ts';
import { redisCommand, startRedis, type RedisGroup } from './harness/redis.ts';
import type { ExpiringMemberships } from '../lib/memberships.ts';

type Chat = { type: 'chat.message'; text: string };
type Joined = { type: 'user.joined'; who: string };
type Events = Chat | Joined;

/** Resolves the n-th time `hit` is called (event-driven waiting, no sleeps). */
function counter<T = unknown>(n: number): { hit(value: T): void; done: Promise<T[]>; seen: T[] } {
  const seen: T[] = [];
  let resolve!: (v: T[]) => void;
  const done = new Promise<T[]>((r) => (resolve = r));
  return {
    seen,
    done,
    hit(value) {
      seen.push(value);
      if (seen.length === n) resolve(seen);
    },
  };
}

/** A logger that records lines and lets a test await one matching a pattern. */
function recordingLogger(): ConsumerLogger & {
  lines: string[];
  next(re: RegExp): Promise<string>;
} {
  const lines: string[] = [];
  const waiters: Array<[RegExp, (line: string) => void]> = [];
  const add = (line: string): void => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w[0].test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w[1](line);
      }
    }
  };
  return {
    lines,
    warn: add,
    error: add,
    next(re) {
      const found = lines.find((l) => re.test(l));
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push([re, resolve]));
    },
  };
}

/** Group membership as the in-memory layer holds it (test-only peek). */
function groupCount(layer: InMemoryChannelLayer): number {
  return (layer as unknown as { groups: ExpiringMemberships }).groups.names().length;
}

describe('Consumer dispatch', () => {
  let layer: InMemoryChannelLayer;
  before(() => {
    layer = new InMemoryChannelLayer();
  });
  after(() => layer.close());

  test('chat.message calls chat_message (Django spelling), in order, typed', async () => {
    const got = counter<Chat>(3);
    class Snake extends Consumer<Events> {
      async chat_message(msg: Chat): Promise<void> {
        got.hit(msg);
      }
    }
    const c = await new Snake({ layer }).start();
    assert.match(c.channelName, /^specific\.[0-9a-f]+![0-9a-f]+$/);
    for (const text of ['a', 'b', 'c'])
      await layer.send(c.channelName, { type: 'chat.message', text });
    assert.deepEqual(
      (await got.done).map((m) => m.text),
      ['a', 'b', 'c'],
    );
    assert.equal(c.counts.dispatched, 3);
    await c.close();
  });

  test('chat.message calls chatMessage (camelCase); user.joined calls userJoined', async () => {
    const got = counter<string>(2);
    class Camel extends Consumer<Events> {
      chatMessage(msg: Chat): void {
        got.hit(`chat:${msg.text}`);
      }
      // An arrow-function field works as well as a method.
      userJoined = (msg: Joined): void => got.hit(`joined:${msg.who}`);
    }
    const c = await new Camel({ layer }).start();
    await layer.send(c.channelName, { type: 'chat.message', text: 'x' });
    await layer.send(c.channelName, { type: 'user.joined', who: 'ana' });
    assert.deepEqual(await got.done, ['chat:x', 'joined:ana']);
    await c.close();
  });

  test('a handler map wins over methods and is typed per message type', async () => {
    const got = counter<string>(2);
    class WithMethod extends Consumer<Events> {
      chat_message(): void {
        got.hit('method');
      }
    }
    const c = await new WithMethod({
      layer,
      handlers: {
        'chat.message': (msg) => got.hit(`map:${msg.text}`),
        'user.joined': (msg) => got.hit(`map:${msg.who}`),
      },
    }).start();
    await layer.send(c.channelName, { type: 'chat.message', text: 't' });
    await layer.send(c.channelName, { type: 'user.joined', who: 'bo' });
    assert.deepEqual(await got.done, ['map:t', 'map:bo']);
    await c.close();
  });

  test('handlers never overlap: the next message waits for the running handler', async () => {
    let running = 0;
    let maxRunning = 0;
    const got = counter<number>(5);
    class Slow extends Consumer {
      async work(msg: Message): Promise<void> {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await tick();
        await tick();
        running--;
        got.hit(msg.n as number);
      }
    }
    const c = await new Slow({ layer }).start();
    for (let n = 0; n < 5; n++) await layer.send(c.channelName, { type: 'work', n });
    assert.deepEqual(await got.done, [0, 1, 2, 3, 4]);
    assert.equal(maxRunning, 1);
    await c.close();
  });

  test('an unknown type is logged as UnhandledMessageType and the loop goes on', async () => {
    const logger = recordingLogger();
    const got = counter<Chat>(1);
    class Chatty extends Consumer<Events> {
      chat_message(msg: Chat): void {
        got.hit(msg);
      }
    }
    const c = await new Chatty({ layer, logger }).start();
    await layer.send(c.channelName, { type: 'chat.mesage', text: 'typo' });
    await layer.send(c.channelName, { type: 'chat.message', text: 'ok' });
    assert.equal((await got.done)[0]!.text, 'ok');
    const line = await logger.next(/chat\.mesage/);
    assert.match(line, /No handler for message type "chat\.mesage" on Chatty/);
    assert.match(line, /chat_mesage\(\) or chatMesage\(\)/);
    assert.equal(c.counts.unhandled, 1);
    await c.close();
  });

  test("with an 'error' listener the UnhandledMessageType is emitted instead of logged", async () => {
    const logger = recordingLogger();
    const c = await new Consumer({ layer, logger }).start();
    const emitted = new Promise<unknown>((resolve) => c.once('error', resolve));
    await layer.send(c.channelName, { type: 'nobody.home' });
    const err = await emitted;
    assert.ok(err instanceof UnhandledMessageType);
    assert.equal(err.messageType, 'nobody.home');
    assert.equal(err.consumer, 'Consumer');
    assert.deepEqual(err.tried, ['nobody_home', 'nobodyHome']);
    assert.deepEqual(logger.lines, []);
    await c.close();
  });

  test('framework methods are never handlers: {type: "close"} / "group.add" are unhandled', async () => {
    const errors = counter<unknown>(3);
    const got = counter<Chat>(1);
    class Safe extends Consumer<Events> {
      chat_message(msg: Chat): void {
        got.hit(msg);
      }
    }
    const c = await new Safe({ layer }).start();
    c.on('error', (err) => errors.hit(err));
    await layer.send(c.channelName, { type: 'close' });
    await layer.send(c.channelName, { type: 'group.add', group: 'evil' });
    await layer.send(c.channelName, { type: 'emit' });
    await layer.send(c.channelName, { type: 'chat.message', text: 'still here' });
    for (const err of await errors.done) assert.ok(err instanceof UnhandledMessageType);
    assert.equal((await got.done)[0]!.text, 'still here');
    assert.equal(c.isClosed, false);
    assert.equal(c.memberships.size, 0);
    await c.close();
  });

  test('a throwing handler is reported and the next message is handled', async () => {
    const logger = recordingLogger();
    const got = counter<string>(2);
    class Flaky extends Consumer {
      async boom(msg: Message): Promise<void> {
        got.hit(String(msg.n));
        if (msg.n === 1) throw new Error('handler exploded');
      }
    }
    const c = await new Flaky({ layer, logger }).start();
    await layer.send(c.channelName, { type: 'boom', n: 1 });
    await layer.send(c.channelName, { type: 'boom', n: 2 });
    assert.deepEqual(await got.done, ['1', '2']);
    assert.match(await logger.next(/exploded/), /Flaky handling "boom".*handler exploded/);
    assert.equal(c.counts.failed, 1);
    await c.close();
  });
});

describe('Consumer groups and close', () => {
  let layer: InMemoryChannelLayer;
  before(() => {
    layer = new InMemoryChannelLayer();
  });
  after(() => layer.close());

  test('groupAdd memberships are left on close; others in the group lose nothing', async () => {
    const gotA = counter<number>(1);
    const gotB = counter<number>(11);
    class Member extends Consumer {
      constructor(private readonly sink: (n: number) => void) {
        super({ layer });
      }
      tick(msg: Message): void {
        this.sink(msg.n as number);
      }
    }
    const a = await new Member(gotA.hit).start();
    const b = await new Member(gotB.hit).start();
    await a.groupAdd('room');
    await a.groupAdd('other');
    await b.groupAdd('room');
    assert.deepEqual([...a.memberships].sort(), ['other', 'room']);

    await layer.groupSend('room', { type: 'tick', n: 0 });
    assert.deepEqual(await gotA.done, [0]);
    await a.close();
    assert.equal(a.isClosed, true);
    await a.closed;
    assert.equal(a.memberships.size, 0);

    const before = layer.stats();
    await layer.groupSend('other', { type: 'tick', n: -1 });
    for (let n = 1; n <= 10; n++) await layer.groupSend('room', { type: 'tick', n });
    const afterStats = layer.stats();
    // 'other' has no member left; 'room' has only b.
    assert.equal(afterStats.groupDeliveries! - before.groupDeliveries!, 10);
    assert.deepEqual(await gotB.done, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(gotA.seen, [0]);
    await b.close();
    assert.equal(groupCount(layer), 0);
    assert.equal(layer.activeChannels, 0);
  });

  test('static groups are joined on start and left on close', async () => {
    class Lobby extends Consumer {
      static override groups = ['lobby', 'announcements'];
    }
    const c = await new Lobby({ layer }).start();
    assert.deepEqual([...c.memberships].sort(), ['announcements', 'lobby']);
    await c.close();
    assert.equal(groupCount(layer), 0);
  });

  test('close aborts the pending receive without taking a message (layer without deleteChannel)', async () => {
    // A layer that cannot delete channels shows what the aborted receive left behind.
    const { deleteChannel: _omit, ...rest } = Object.fromEntries(
      [
        'send',
        'receive',
        'newChannel',
        'groupAdd',
        'groupDiscard',
        'groupSend',
        'flush',
        'close',
        'deleteChannel',
      ].map((k) => [
        k,
        (layer as unknown as Record<string, (...a: unknown[]) => unknown>)[k]!.bind(layer),
      ]),
    );
    const bare = { ...rest, extensions: layer.extensions } as unknown as ChannelLayer;
    const c = await new Consumer({ layer: bare }).start();
    await tick(); // the loop is now parked in receive()
    await c.close();
    await c.closed;
    await layer.send(c.channelName, { type: 'late', n: 1 });
    const late = await layer.receive(c.channelName, { signal: AbortSignal.timeout(2000) });
    assert.deepEqual(late, { type: 'late', n: 1 });
    assert.equal(c.counts.dispatched + c.counts.unhandled, 0);
  });

  test('after close, groupAdd rejects with ConsumerClosed; close is idempotent; closed emits', async () => {
    const c = await new Consumer({ layer }).start();
    const closeEvent = new Promise<void>((resolve) => c.once('close', resolve));
    await Promise.all([c.close(), c.close()]);
    await closeEvent;
    await assert.rejects(c.groupAdd('room'), ConsumerClosed);
    assert.equal(groupCount(layer), 0);
  });

  test('close during an in-flight groupAdd still leaves the group', async () => {
    const c = await new Consumer({ layer }).start();
    const adding = c.groupAdd('race');
    const closing = c.close();
    await Promise.allSettled([adding]);
    await closing;
    assert.equal(groupCount(layer), 0);
  });

  test('a handler may close its own consumer', async () => {
    class Quitter extends Consumer {
      async quit(): Promise<void> {
        await this.close();
      }
    }
    const c = await new Quitter({ layer }).start();
    await c.groupAdd('quitters');
    await layer.send(c.channelName, { type: 'quit' });
    await c.closed;
    assert.equal(groupCount(layer), 0);
  });

  test('closing the layer under a consumer ends the consumer', async () => {
    const own = new InMemoryChannelLayer();
    const c = await new Consumer({ layer: own }).start();
    await tick();
    await own.close();
    await c.closed;
    assert.equal(c.isClosed, true);
  });
});

describe('1,000 consumers opened and closed leave nothing behind', () => {
  test('in-memory: no membership, channel, listener or timer remains', async () => {
    const layer = new InMemoryChannelLayer({ capacity: 10 });
    const resourcesBefore = countResources();
    const layerEventsBefore = layer.eventNames().length;
    const N = 1000;
    const got = counter<string>(N);
    class Member extends Consumer {
      chat_message(): void {
        got.hit(this.channelName);
      }
    }
    const consumers = await Promise.all(
      Array.from({ length: N }, () => new Member({ layer }).start()),
    );
    await Promise.all(
      consumers.map((c, i) => Promise.all([c.groupAdd('room'), c.groupAdd(`own-${i}`)])),
    );
    assert.equal(groupCount(layer), N + 1);
    // Every consumer is parked in receive(): one waiter, one abort listener each.
    assert.equal(layer.activeChannels, N);
    assert.equal(getEventListeners(consumers[0]!.signal, 'abort').length, 1);
    await layer.groupSend('room', { type: 'chat.message' });
    const reached = await got.done;
    assert.equal(new Set(reached).size, N, 'every consumer got the broadcast once');

    await Promise.all(consumers.map((c) => c.close()));
    await Promise.all(consumers.map((c) => c.closed));

    assert.equal(layer.activeChannels, 0, 'no channel state left in the layer');
    assert.equal(groupCount(layer), 0, 'no group left in the layer');
    const before = layer.stats();
    await layer.groupSend('room', { type: 'chat.message' });
    for (let i = 0; i < N; i += 97) await layer.groupSend(`own-${i}`, { type: 'chat.message' });
    assert.equal(
      layer.stats().groupDeliveries,
      before.groupDeliveries,
      'no member received anything',
    );
    for (const c of consumers) {
      assert.equal(c.memberships.size, 0);
      assert.equal(getEventListeners(c.signal, 'abort').length, 0);
      assert.equal(c.listenerCount('error') + c.listenerCount('close'), 0);
    }
    assert.equal(layer.eventNames().length, layerEventsBefore);
    assert.deepEqual(countResources(), resourcesBefore, 'no timer or handle left');
    await layer.close();
  });

  test('closed consumers are garbage: nothing (layer, timers, signals) still references them', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const layer = new InMemoryChannelLayer();
    const refs = await (async () => {
      const consumers = await Promise.all(
        Array.from({ length: 1000 }, () => new Consumer({ layer }).start()),
      );
      await Promise.all(consumers.map((c) => c.groupAdd('room')));
      await Promise.all(consumers.map((c) => c.close()));
      await Promise.all(consumers.map((c) => c.closed));
      return consumers.map((c) => new WeakRef(c));
    })();
    // Let the closing promise chains and timers unwind, collecting between turns; a consumer
    // still referenced after 2 s of this is a leak.
    const alive = (): number => refs.filter((r) => r.deref() !== undefined).length;
    for (let i = 0; i < 100 && alive() > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      gc();
    }
    assert.equal(alive(), 0);
    await layer.close();
  });

  describe('RedisChannelLayer on a real redis-server', () => {
    let redis: RedisGroup;
    before(async () => {
      redis = await startRedis();
    });
    after(() => redis.stop());

    test('1,000 consumers leave no group key and no channel behind', async () => {
      const layer = new RedisChannelLayer({ hosts: redis.urls });
      const N = 1000;
      const got = counter<string>(N);
      class Member extends Consumer {
        chat_message(): void {
          got.hit(this.channelName);
        }
      }
      const consumers = await Promise.all(
        Array.from({ length: N }, () => new Member({ layer }).start()),
      );
      await Promise.all(consumers.map((c) => c.groupAdd('room')));
      const port = redis.servers[0]!.port;
      assert.equal(await redisCommand(port, ['ZCARD', 'asgi:group:room']), N);
      await layer.groupSend('room', { type: 'chat.message' });
      assert.equal(new Set(await got.done).size, N);

      await Promise.all(consumers.map((c) => c.close()));
      await Promise.all(consumers.map((c) => c.closed));
      assert.equal(await redisCommand(port, ['ZCARD', 'asgi:group:room']), 0);
      // Only the layer's own liveness registration remains while it is open (README "Operations").
      assert.deepEqual(await redisCommand(port, ['KEYS', 'asgi*']), ['asgi:processes']);
      const before = layer.stats();
      await layer.groupSend('room', { type: 'chat.message' });
      assert.equal(layer.stats().groupDeliveries ?? 0, before.groupDeliveries ?? 0);
      for (const c of consumers) assert.equal(getEventListeners(c.signal, 'abort').length, 0);
      await layer.close();
      // Closing leaves the registry: nothing at all is left behind.
      assert.deepEqual(await redisCommand(port, ['KEYS', 'asgi*']), []);
    });
  });
});

/** Active handles and requests by kind (timers included), as Node reports them. */
function countResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
