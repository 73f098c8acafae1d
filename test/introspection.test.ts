/**
 * groupChannels / groupSize / health (issue 18 part 2) on the three layers, against real
 * redis-servers: live memberships only (expired ones and, on the core layer, dead processes'
 * left out; on Pub/Sub this process's members only), and health reports that never reject,
 * including a shard that is down (bounded by commandTimeoutMs) and one that is a replica.
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import {
  InMemoryChannelLayer,
  InvalidGroupName,
  NotAGroup,
  RedisChannelLayer,
  RedisPubSubChannelLayer,
  type HealthReport,
  type LayerOptions,
} from '../lib/index.ts';
import { freePort, startRedis, type RedisGroup } from './harness/redis.ts';

let three: RedisGroup;
let replica: RedisGroup;
const closers: Array<{ close(): Promise<void> }> = [];
const raws: Redis[] = [];

before(async () => {
  three = await startRedis({ count: 3 });
  replica = await startRedis({
    args: ['--replicaof', '127.0.0.1', String(three.servers[0]!.port)],
  });
});

after(async () => {
  await Promise.all(closers.map((c) => c.close()));
  for (const r of raws) r.disconnect();
  await Promise.all([three?.stop(), replica?.stop()]);
});

function core(options: LayerOptions = {}): RedisChannelLayer {
  const layer = new RedisChannelLayer({ hosts: three.urls, ...options });
  closers.push(layer);
  return layer;
}

function pubsub(options: LayerOptions = {}): RedisPubSubChannelLayer {
  const layer = new RedisPubSubChannelLayer({ hosts: three.urls, ...options });
  closers.push(layer);
  return layer;
}

/** Shape every health report has, whatever the layer. */
function assertShape(report: HealthReport): void {
  assert.equal(typeof report.ok, 'boolean');
  assert.ok(Array.isArray(report.shards));
  assert.ok(['idle', 'running', 'reconnecting', 'stopped'].includes(report.reader));
}

describe('groupChannels / groupSize', () => {
  it('core: live memberships, expired ones left out, any channel kind', async () => {
    const layer = core({ prefix: 'intro-core', groupExpiry: 0.5 });
    const mine = await layer.newChannel();
    // A channels_redis process's channel (never registered) and a normal channel count too.
    const foreign = 'specific.0123456789abcdef0123456789abcdef!fedcba';
    for (const channel of [mine, foreign, 'work.queue']) await layer.groupAdd('g', channel);
    assert.deepEqual((await layer.groupChannels('g')).sort(), [foreign, mine, 'work.queue'].sort());
    assert.equal(await layer.groupSize('g'), 3);
    assert.equal(await layer.groupSize('nobody'), 0);
    await delay(600); // membership expiry is the subject
    await layer.groupAdd('g', 'late.one');
    assert.deepEqual(await layer.groupChannels('g'), ['late.one']);
    await assert.rejects(layer.groupSize('bad group!'), InvalidGroupName);
    const redis = new Redis(three.urls[layer.shardOf('str', { group: true })]!);
    raws.push(redis);
    await redis.set('intro-core:group:str', 'x');
    await assert.rejects(layer.groupChannels('str'), NotAGroup);
  });

  it("Pub/Sub: this process's members only", async () => {
    const a = pubsub({ prefix: 'intro-ps.' });
    const b = pubsub({ prefix: 'intro-ps.' });
    const [a1, a2, b1] = [await a.newChannel(), await a.newChannel(), await b.newChannel()];
    await a.groupAdd('g', a1);
    await a.groupAdd('g', a2);
    await b.groupAdd('g', b1);
    assert.deepEqual((await a.groupChannels('g')).sort(), [a1, a2].sort());
    assert.equal(await a.groupSize('g'), 2);
    assert.deepEqual(await b.groupChannels('g'), [b1]);
    await a.groupDiscard('g', a1);
    assert.deepEqual(await a.groupChannels('g'), [a2]);
  });

  it('in-memory: members, expired ones left out', async () => {
    const layer = new InMemoryChannelLayer({ groupExpiry: 0.2 });
    closers.push(layer);
    await layer.groupAdd('g', 'one');
    await layer.groupAdd('g', 'two');
    assert.deepEqual(await layer.groupChannels('g'), ['one', 'two']);
    assert.equal(await layer.groupSize('g'), 2);
    await delay(300); // membership expiry is the subject
    assert.equal(await layer.groupSize('g'), 0);
  });
});

describe('health', () => {
  it('core: every shard answers as master; the reader and the oldest waiting receive', async () => {
    const layer = core({ prefix: 'intro-health' });
    const idle = await layer.health();
    assertShape(idle);
    assert.equal(idle.ok, true);
    assert.equal(idle.reader, 'idle');
    assert.equal(idle.oldestWaitMs, undefined);
    assert.deepEqual(
      idle.shards.map((s) => [s.shard, s.ok, s.role, s.id]),
      three.urls.map((url, i) => [i, true, 'master', url]),
    );
    for (const s of idle.shards) assert.ok(s.latencyMs! >= 0 && s.latencyMs! < 1000);

    const started = Date.now();
    const controller = new AbortController();
    const pending = layer.receive('intro.waiting', { signal: controller.signal });
    await delay(50); // the age of the waiting receive is the subject
    const busy = await layer.health();
    assert.equal(busy.reader, 'running');
    assert.ok(busy.oldestWaitMs! >= 50, `oldest wait ${busy.oldestWaitMs}`);
    assert.ok(busy.oldestWaitMs! <= Date.now() - started);
    controller.abort();
    await assert.rejects(pending);

    await layer.close();
    const closed = await layer.health();
    assert.equal(closed.ok, false);
    assert.equal(closed.reader, 'stopped');
  });

  it('a shard that is down: ok false with the reason, within commandTimeoutMs', async () => {
    const down = `redis://127.0.0.1:${await freePort()}`;
    for (const make of [core, pubsub]) {
      const layer = make({
        hosts: [three.urls[0]!, down],
        commandTimeoutMs: 500,
        logger: { warn() {} },
      });
      const started = Date.now();
      const report = await layer.health();
      const took = Date.now() - started;
      assert.ok(took < 1500, `took ${took} ms`);
      assert.equal(report.ok, false);
      assert.equal(report.shards[0]!.ok, true);
      assert.equal(report.shards[1]!.ok, false);
      assert.equal(report.shards[1]!.latencyMs, undefined);
      assert.match(report.shards[1]!.error!, /not reachable|no answer|ECONNREFUSED/);
      await layer.close();
    }
  });

  it('a replica is not ok (it cannot take writes), and says so', async () => {
    const layer = core({ hosts: replica.urls });
    const report = await layer.health();
    assert.equal(report.ok, false);
    assert.equal(report.shards[0]!.role, 'replica');
    assert.match(report.shards[0]!.error!, /replica/);
  });

  it('Pub/Sub: subscriber state and the oldest waiting receive', async () => {
    const layer = pubsub({ prefix: 'intro-ps-health.' });
    assert.equal((await layer.health()).reader, 'idle');
    const channel = await layer.newChannel();
    const controller = new AbortController();
    const pending = layer.receive(channel, { signal: controller.signal });
    const report = await layer.health();
    assertShape(report);
    assert.equal(report.ok, true);
    assert.equal(report.reader, 'running');
    assert.equal(report.shards.length, 3);
    assert.ok(report.oldestWaitMs! >= 0);
    controller.abort();
    await assert.rejects(pending);
  });

  it('in-memory: ok while open', async () => {
    const layer = new InMemoryChannelLayer();
    const report = await layer.health();
    assert.deepEqual(report, { ok: true, shards: [], reader: 'running', oldestWaitMs: undefined });
    await layer.close();
    assert.equal((await layer.health()).ok, false);
  });
});
