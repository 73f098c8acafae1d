/**
 * The bench's two-sided ping-pong scenarios: a layer per side, in two processes or
 * two layers in one process, for chanlayer and for channels_redis. Each must really carry every
 * round trip between the two sides, over a real Redis, and leave no process behind.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pythonArgv, runChild } from '../bench/children.ts';
import { loadChanlayer, runScenario, type Chanlayer } from '../bench/scenarios/index.ts';
import type { ScenarioId, ScenarioParams, ScenarioResult } from '../bench/types.ts';
import { redisCommand, startRedis, type RedisGroup } from './harness/redis.ts';

let redis: RedisGroup;
let chanlayer: Chanlayer;
before(async () => {
  redis = await startRedis();
  const loaded = await loadChanlayer();
  if (typeof loaded === 'string') throw new Error(loaded);
  chanlayer = loaded;
});
after(() => redis.stop());

const params = (scenario: ScenarioId): ScenarioParams => ({
  scenario,
  hosts: [redis.urls[0]!],
  duration: 0.3,
  warmup: 0.1,
  iterations: 1,
  warmupIterations: 0,
  inflight: 1,
  groupSize: 1,
  bigGroupSize: 1,
  memoryChannels: 1,
  stallSeconds: 5,
});

/** Every round trip counted, both sides delivered (2 messages a trip), sane percentiles. */
function assertRoundTrips(r: ScenarioResult): void {
  const samples = Number(r.info?.samples);
  assert.ok(samples > 10, `samples: ${String(r.info?.samples)}`);
  assert.ok(Number(r.info?.messages) >= 2 * samples);
  assert.ok(r.metrics.p50! > 0 && r.metrics.p50! <= r.metrics.p99!);
}

/**
 * Keys left in Redis: none once both sides have received everything sent to them, but the
 * liveness registry (`asgi:processes`), which outlives its processes by design
 * (lib/redis/liveness.ts: trimmed after groupExpiry + deadAfter).
 */
async function keysLeft(): Promise<number> {
  const keys = (await redisCommand(redis.servers[0]!.port, ['KEYS', '*'])) as string[];
  return keys.filter((k) => k !== 'asgi:processes').length;
}

for (const kind of ['core', 'pubsub'] as const) {
  for (const shape of ['2proc', '2layer'] as const) {
    const id = `${kind}-pingpong-${shape}` as const;
    test(`chanlayer ${id}: round trips between the two sides`, async () => {
      const r = await runScenario(chanlayer.make, params(id));
      assertRoundTrips(r);
      assert.equal(await keysLeft(), 0);
    });
    test(`channels_redis ${id}: the same shape on the Python side`, async () => {
      const r = await runChild(pythonArgv([], params(id)), 60_000);
      assertRoundTrips(r);
      assert.equal(await keysLeft(), 0);
    });
  }
}

test('a ponger process that cannot start fails the run with its reason, not a hang', async () => {
  // The pinger here loads chanlayer; the ponger process is pointed at a lib/ that is not there.
  await assert.rejects(
    runScenario(chanlayer.make, { ...params('core-pingpong-2proc'), lib: 'file:///nowhere/x.ts' }),
    /ponger exit 1: .*cannot be loaded/s,
  );
});
