/**
 * The bench's bare Pub/Sub client (bench/bare/): its ping-pong figure is the floor the
 * performance report compares chanlayer with, so it must really carry each message to the
 * channel it was sent to, over a real Redis.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { runBareScenario } from '../bench/bare/index.ts';
import { BarePubSub } from '../bench/bare/pubsub.ts';
import { pingPongScenario } from '../bench/scenarios/pingpong.ts';
import { startRedis, type RedisGroup } from './harness/redis.ts';

let redis: RedisGroup;
before(async () => {
  redis = await startRedis();
});
after(() => redis.stop());

test('bare Pub/Sub client delivers each message, decoded, to its own channel only', async () => {
  const client = await BarePubSub.connect(redis.urls[0]!);
  try {
    const a = await client.newChannel();
    const b = await client.newChannel();
    assert.notEqual(a, b);
    const atA = client.receive(a);
    const atB = client.receive(b);
    await client.send(b, { type: 'to.b', n: 2 });
    await client.send(a, { type: 'to.a', n: 1, payload: 'x'.repeat(300) });
    assert.deepEqual(await atB, { type: 'to.b', n: 2 });
    assert.deepEqual(await atA, { type: 'to.a', n: 1, payload: 'x'.repeat(300) });
    // Sent before anyone receives: the push precedes the PUBLISH reply, so it is kept.
    await client.send(a, { type: 'early' });
    const late = client.receive(a);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((resolve) => (timer = setTimeout(resolve, 2000, 'lost')));
    assert.deepEqual(await Promise.race([late, timeout]), { type: 'early' });
    clearTimeout(timer);
  } finally {
    await client.close();
  }
});

test('the ping-pong scenario runs on the bare client and counts its round trips', async () => {
  const client = await BarePubSub.connect(redis.urls[0]!);
  try {
    const r = await pingPongScenario(client, { duration: 0.3, warmup: 0.1, stallSeconds: 5 });
    assert.ok(Number(r.info?.samples) > 10, `samples: ${String(r.info?.samples)}`);
    assert.ok(r.metrics.p50! > 0 && r.metrics.p50! <= r.metrics.p99!);
  } finally {
    await client.close();
  }
});

for (const scenario of ['pubsub-pingpong-2layer', 'pubsub-pingpong-2proc'] as const) {
  test(`${scenario} runs on bare clients (the ponger a bare client in its own process for 2proc)`, async () => {
    const r = await runBareScenario({
      scenario,
      hosts: redis.urls,
      duration: 0.3,
      warmup: 0.1,
      iterations: 0,
      warmupIterations: 0,
      inflight: 1,
      groupSize: 0,
      bigGroupSize: 0,
      memoryChannels: 0,
      stallSeconds: 5,
      bare: true,
    });
    assert.ok(Number(r.info?.samples) > 10, `samples: ${String(r.info?.samples)}`);
    assert.ok(r.metrics.p50! > 0 && r.metrics.p50! <= r.metrics.p99!);
  });
}
