/**
 * Each ioredis internal chanlayer relies on (lib/redis/ioredis-internals.ts), against a real
 * redis-server: the internal is there (its `supported` flag stays true) and has the effect relied
 * on, so an ioredis upgrade that renames or changes one fails here instead of silently turning
 * direct writes, the subscriber's memory saving or the fast failover into no-ops (a Redis
 * Cluster's internals against a real 3-master cluster). Also measures
 * what public options make unnecessary: `maxRetriesPerRequest: 0` with `enableOfflineQueue:
 * false` leaves nothing queued on a reconnecting client, so only a client with an offline queue
 * needs `flushQueue` on close.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, before, describe, test } from 'node:test';
import { Cluster, Command, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { writeDirect } from '../lib/redis/direct.ts';
import { useHelloReadyCheck } from '../lib/redis/hello.ts';
import {
  askSentinelsFirst,
  autoPipelineIdle,
  clusterNode,
  ERROR_TEXT,
  flushQueued,
  reconnectNow,
  replaceSubscriptionSet,
  shardedMessagesAsBuffers,
  socketOf,
  supported,
} from '../lib/redis/ioredis-internals.ts';
import { slotOf, startCluster, type Cluster as TestCluster } from './harness/cluster.ts';
import { startProxy, type RedisProxy } from './harness/proxy.ts';
import { redisCommand, startRedis, type RedisGroup } from './harness/redis.ts';
import { waitFor } from './harness/wait.ts';

let redis: RedisGroup;
let port: number;
const clients: Redis[] = [];
const proxies: RedisProxy[] = [];

before(async () => {
  redis = await startRedis();
  port = redis.servers[0]!.port;
});
afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});
after(() => redis?.stop());

async function client(options: RedisOptions = {}, url = redis.urls[0]!): Promise<Redis> {
  const c = new Redis(url, { retryStrategy: () => null, ...options });
  c.on('error', () => {});
  clients.push(c);
  if (!options.lazyConnect) await once(c, 'ready');
  return c;
}

async function proxy(): Promise<RedisProxy> {
  const p = await startProxy(port);
  proxies.push(p);
  return p;
}

/** Settles `promise` to its outcome, or 'pending' if it has not settled after a few turns. */
async function outcome(promise: Promise<unknown>): Promise<string> {
  let state = 'pending';
  promise.then(
    (v) => (state = `resolved: ${String(v)}`),
    (e: unknown) => (state = `rejected: ${(e as Error).message}`),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return state;
}

/** A client on `via` that has just lost its connection and waits out a 60 s backoff. */
async function reconnecting(via: RedisProxy, options: RedisOptions = {}): Promise<Redis> {
  const c = await client({ retryStrategy: () => 60_000, ...options }, via.url);
  via.cut();
  await once(c, 'reconnecting');
  return c;
}

describe('ioredis internals (lib/redis/ioredis-internals.ts)', () => {
  test('autoPipelineIdle: false while an auto-pipelined command is queued or awaiting its reply', async () => {
    const via = await proxy();
    const c = await client({ enableAutoPipelining: true }, via.url);
    assert.equal(autoPipelineIdle(c), true);
    via.hold = true;
    const reply = c.ping();
    assert.equal(autoPipelineIdle(c), false, 'queued in the auto-pipeline');
    await waitFor(() => c.autoPipelineQueueSize === 0, { what: 'the pipeline written' });
    // Written, reply held back: only `_runningAutoPipelines` knows (the public size says 0).
    assert.equal(autoPipelineIdle(c), false, 'awaiting its reply');
    via.release();
    assert.equal(await reply, 'PONG');
    await new Promise((r) => setImmediate(r));
    assert.equal(autoPipelineIdle(c), true);
    assert.equal(supported.autoPipeline, true);
  });

  test('socketOf: the socket commands are written into (corking it holds their bytes)', async () => {
    const c = await client({ enableAutoPipelining: true });
    const socket = socketOf(c)!;
    assert.equal(socket.remotePort, port);
    socket.cork();
    const command = new Command('ping', []);
    void c.sendCommand(command);
    assert.ok(socket.writableLength > 0, 'the PING waits in the corked socket');
    socket.uncork();
    assert.equal(String(await command.promise), 'PONG');
    // writeDirect relies on both internals: idle, so it writes.
    const direct = new Command('echo', ['x']);
    assert.equal(writeDirect(c, [direct]), true);
    assert.equal(String(await direct.promise), 'x');
    assert.equal(supported.socket, true);
  });

  test('reconnectNow: a client waiting out its backoff reconnects at once', async () => {
    const via = await proxy();
    const c = await reconnecting(via);
    const started = performance.now();
    assert.equal(reconnectNow(c), true);
    await once(c, 'ready');
    assert.ok(performance.now() - started < 5000, 'not after the 60 s backoff');
    assert.equal(reconnectNow(c), false, 'ready: nothing to cut short');
    assert.equal(supported.reconnectTimer, true);
  });

  test('askSentinelsFirst: the sentinel picked is the first one asked', async () => {
    const [a, b] = [await proxy(), await proxy()];
    const c = await client({
      lazyConnect: true,
      sentinels: [
        { host: '127.0.0.1', port: a.port },
        { host: '127.0.0.1', port: b.port },
      ],
      name: 'm',
      sentinelRetryStrategy: () => null,
    });
    askSentinelsFirst(c, (s) => s.port === b.port);
    // b's reply held: the client waits on b and asks nobody else meanwhile.
    b.hold = true;
    c.connect().catch(() => {});
    await waitFor(() => b.accepted > 0, { what: 'sentinel b asked' });
    assert.equal(a.accepted, 0, 'b was asked before a');
    assert.equal(supported.sentinelIterator, true);
  });

  test('replaceReadyCheck (useHelloReadyCheck): HELLO, never INFO, before ready', async () => {
    const calls = async (): Promise<Map<string, number>> => {
      const stats = String(await redisCommand(port, ['INFO', 'commandstats']));
      return new Map(
        [...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]),
      );
    };
    const before = await calls();
    const c = await client({ lazyConnect: true });
    useHelloReadyCheck(c);
    await c.connect();
    const after = await calls();
    assert.equal(supported.readyCheck, true);
    assert.ok((after.get('hello') ?? 0) > (before.get('hello') ?? 0), 'HELLO asked');
    // The one INFO since `before` is `calls()` itself.
    assert.equal((after.get('info') ?? 0) - (before.get('info') ?? 0), 1, 'no INFO from ioredis');
  });

  test('replaceSubscriptionSet: the set that tracks subscriptions is swapped; subscriber mode stays', async () => {
    const c = await client();
    await c.subscribe('news');
    const condition = (c as unknown as { condition: { subscriber: unknown } }).condition;
    const set = condition.subscriber as { channels(type: string): string[] };
    assert.deepEqual(set.channels('subscribe'), ['news'], 'ioredis keeps a copy of each name');
    const standIn = { add() {}, del() {}, channels: () => [], isEmpty: () => false };
    replaceSubscriptionSet(c, standIn);
    assert.equal(condition.subscriber, standIn);
    assert.equal(supported.subscriptionSet, true);
    await assert.rejects(c.get('k'), /subscriber mode/);
    const publisher = await client();
    const message = once(c, 'message');
    await publisher.publish('news', 'hi');
    assert.deepEqual(await message, ['news', 'hi']);
  });

  test('flushQueued: rejects what a reconnecting client with an offline queue holds after disconnect()', async () => {
    const via = await proxy();
    const c = await reconnecting(via, { maxRetriesPerRequest: null });
    const queued = c.get('k');
    c.disconnect();
    assert.equal(c.status, 'reconnecting', 'no socket left to close: no close, no end');
    assert.equal(await outcome(queued), 'pending', 'ioredis leaves it hanging');
    flushQueued(c, new Error('Connection is closed.'));
    assert.equal(await outcome(queued), 'rejected: Connection is closed.');
    assert.equal(supported.flushQueue, true);
  });

  test('maxRetriesPerRequest 0 + no offline queue: nothing left queued while reconnecting (no flushQueue needed)', async () => {
    const via = await proxy();
    const c = await client(
      { retryStrategy: () => 60_000, maxRetriesPerRequest: 0, enableOfflineQueue: false },
      via.url,
    );
    via.hold = true;
    const inFlight = c.subscribe('x');
    await waitFor(() => via.accepted === 1 && c.commandQueue.length === 1, { what: 'written' });
    const dropped = new Promise((r) => c.once('reconnecting', r));
    via.cut();
    await dropped;
    assert.match(await outcome(inFlight), new RegExp(`rejected: .*${ERROR_TEXT.maxRetries}`));
    assert.match(await outcome(c.get('k')), new RegExp(`rejected: ${ERROR_TEXT.notWritable}`));
    assert.equal(c.commandQueue.length, 0);
  });

  test('ERROR_TEXT: the texts ioredis rejects with', async () => {
    const via = await proxy();
    const c = await client({ commandTimeout: 50 }, via.url);
    via.hold = true;
    await assert.rejects(c.get('k'), (e: Error) => e.message === ERROR_TEXT.commandTimeout);
    const cut = c.get('k');
    c.disconnect();
    await assert.rejects(cut, (e: Error) => e.message.startsWith(ERROR_TEXT.connectionClosed));
    // notWritable and maxRetries: the test above.
  });
});

describe('ioredis Cluster internals (lib/redis/ioredis-internals.ts)', () => {
  let cluster: TestCluster;
  const clusters: Cluster[] = [];
  before(async () => {
    cluster = await startCluster({ masters: 3, replicasPerMaster: 0 });
  });
  after(async () => {
    for (const c of clusters) c.disconnect();
    await cluster?.stop();
  });

  async function clusterClient(options: ClusterOptions = {}): Promise<Cluster> {
    const nodes = cluster.startupNodes().map(([host, port]) => ({ host, port }));
    const c = new Cluster(nodes, options);
    c.on('error', () => {});
    clusters.push(c);
    await once(c, 'ready');
    return c;
  }

  test("clusterNode: the cluster's own connection to a slot's owner", async () => {
    const c = await clusterClient();
    const slot = slotOf('internals-key');
    const owner = await cluster.ownerOf(slot);
    const node = clusterNode(c, c.slots[slot]![0]!);
    assert.equal(supported.clusterPool, true);
    assert.equal(node?.options.port, owner.port);
    assert.ok(c.nodes('master').includes(node!), 'one of the cluster client’s own connections');
    // A slot's key written there is the key the cluster client reads.
    await node!.set('internals-key', 'v');
    assert.equal(await c.get('internals-key'), 'v');
  });

  test('shardedMessagesAsBuffers: sharded messages arrive as Buffers, never decoded to strings', async () => {
    const c = await clusterClient({ shardedSubscribers: true });
    shardedMessagesAsBuffers(c);
    const received: Buffer[] = [];
    c.on('smessageBuffer', (_name: Buffer, payload: Buffer) => received.push(payload));
    const names = ['internals-a', 'internals-b', 'internals-c'];
    for (const name of names) await c.ssubscribe(name);
    const publisher = await clusterClient();
    const payload = Buffer.from([0xff, 0x00, 0xc1]); // not UTF-8
    for (const name of names) await publisher.spublish(name, payload);
    await waitFor(() => received.length === names.length);
    assert.equal(supported.shardedSubscribers, true);
    for (const p of received) assert.deepEqual(p, payload);
    // What decoding depended on: a 'smessage' listener on a subscriber connection.
    const group = (
      c as unknown as {
        shardedSubscribers: { shardedSubscribers: Map<string, { instance: Redis }> };
      }
    ).shardedSubscribers.shardedSubscribers;
    assert.ok(group.size >= 1);
    for (const { instance } of group.values()) assert.equal(instance.listenerCount('smessage'), 0);
  });
});
