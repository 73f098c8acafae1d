/**
 * Liveness (issue 18 part 1) with real processes: a child Node process with a core layer
 * (test/fixtures/liveness-child.ts) joins channels to a group and is SIGKILLed or SIGSTOPped;
 * this process's layer judges it through the registry; a real channels_redis member (Python)
 * of the same group must never lose a message. Short periods (heartbeat 200 ms, dead after
 * 1000 ms); every wait polls Redis or the public API for its condition, except the outage,
 * whose length is the subject.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import {
  ConfigurationError,
  RedisChannelLayer,
  fromConfig,
  type LayerOptions,
} from '../lib/index.ts';
import { REGISTRY_NAME } from '../lib/redis/liveness.ts';
import { redisAndPeer } from './interop/peer.ts';
import { startRedis } from './harness/redis.ts';
import { waitFor } from './harness/wait.ts';

const LIVENESS = { heartbeatMs: 200, deadAfterMs: 1000 };
const CHILD = path.join(import.meta.dirname, 'fixtures', 'liveness-child.ts');

const env = redisAndPeer(3);
const layers: RedisChannelLayer[] = [];
const raws: Redis[] = [];
const children: ChildProcess[] = [];

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(layers.map((l) => l.close()));
  for (const r of raws) r.disconnect();
});

/** A core layer on the test's three servers unless `options.hosts` says otherwise. */
function makeLayer(options: LayerOptions): RedisChannelLayer {
  const layer = new RedisChannelLayer({ hosts: env.redis.urls, ...options });
  layers.push(layer);
  return layer;
}

/** A plain client on the shard `index` of the test's hosts. */
function raw(index: number): Redis {
  const client = new Redis(env.redis.urls[index]!, { maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  raws.push(client);
  return client;
}

interface Child {
  proc: ChildProcess;
  client: string;
  channels: string[];
  /** The next line the child prints after its first. */
  next(): Promise<{ got: Record<string, unknown>; stats: Record<string, number> }>;
}

/** Starts a child layer with `options` whose `count` channels join `group`. */
async function startChild(options: LayerOptions, group: string, count: number): Promise<Child> {
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      CHILD,
      JSON.stringify({ hosts: env.redis.urls, ...options }),
      group,
      String(count),
    ],
    { cwd: path.join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(proc);
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<never> => {
    const { value, done } = await lines.next();
    if (done) throw new Error('the child exited');
    return JSON.parse(value as string) as never;
  };
  const first = (await next()) as { client: string; channels: string[] };
  return { proc, ...first, next };
}

async function kill(child: Child, signal: NodeJS.Signals): Promise<void> {
  const exited = once(child.proc, 'exit');
  child.proc.kill(signal);
  if (signal === 'SIGKILL') await exited;
}

const placementOf = (layer: RedisChannelLayer, name: string, group = false): Redis =>
  raw(layer.shardOf(name, { group }));

/** Members of a group, read from Redis. */
async function groupMembers(layer: RedisChannelLayer, prefix: string, group: string) {
  return placementOf(layer, group, true).zrange(`${prefix}:group:${group}`, 0, -1);
}

describe('liveness: dead processes leave no trace', () => {
  it('a SIGKILLed process: its channels get nothing and leave the group; a channels_redis member gets every message', async () => {
    const prefix = 'live-kill';
    const group = 'room';
    const judge = makeLayer({ prefix, liveness: LIVENESS, capacity: 2000 });
    const py = await env.peer.core({ hosts: env.redis.urls, prefix, capacity: 2000 });
    const pyChannel = await py.newChannel();
    await py.groupAdd(group, pyChannel);
    const child = await startChild({ prefix, liveness: LIVENESS }, group, 200);
    assert.equal(await judge.groupSize(group), 201);

    await kill(child, 'SIGKILL');
    // The judge's verdict (one heartbeat after deadAfterMs) shows in groupSize.
    await waitFor(async () => (await judge.groupSize(group)) === 1, {
      timeoutMs: 10_000,
      what: 'the dead process to leave the live members',
    });
    assert.deepEqual(await judge.groupChannels(group), [pyChannel]);

    const queueName = `specific.${child.client}!`;
    const queue = placementOf(judge, queueName);
    for (let n = 0; n < 1000; n++) await judge.groupSend(group, { type: 'm', n });
    assert.equal(await queue.exists(prefix + queueName), 0, 'nothing written to the dead queue');
    assert.deepEqual(await groupMembers(judge, prefix, group), [pyChannel]);
    assert.equal(judge.stats().deadRemoved, 200);
    for (let n = 0; n < 1000; n++)
      assert.deepEqual(await py.receive(pyChannel, 10), { type: 'm', n });
    await py.close();
  });

  it('a process paused past deadAfterMs (SIGSTOP) is removed, and on SIGCONT puts its memberships back', async () => {
    const prefix = 'live-stop';
    const group = 'room';
    const judge = makeLayer({ prefix, liveness: LIVENESS });
    const child = await startChild({ prefix, liveness: LIVENESS }, group, 20);
    await kill(child, 'SIGSTOP');
    // Group sends from the judge remove the paused process's channels once it is judged dead.
    await waitFor(
      async () => {
        await judge.groupSend(group, { type: 'while-paused' });
        return (await groupMembers(judge, prefix, group)).length === 0;
      },
      { timeoutMs: 10_000, what: 'the paused process to be removed from the group' },
    );
    assert.equal(judge.stats().deadRemoved, 20);

    child.proc.kill('SIGCONT');
    await waitFor(async () => (await groupMembers(judge, prefix, group)).length === 20, {
      what: 'the memberships to be restored',
    });
    // Once the judge has heard the process is back, a group message reaches it.
    await waitFor(async () => (await judge.groupSize(group)) === 20, {
      what: 'the judge to see the process alive',
    });
    await judge.groupSend(group, { type: 'back' });
    let line = await child.next();
    while (line.got.type !== 'back') line = await child.next();
    assert.equal(line.stats.membershipsRestored, 20);
    assert.deepEqual(
      (await groupMembers(judge, prefix, group)).sort(),
      [...child.channels].sort(),
      'still members after the restore',
    );
    await kill(child, 'SIGKILL');
  });

  it('liveness: false registers nothing, so its channels are never touched', async () => {
    const prefix = 'live-off';
    const group = 'room';
    const judge = makeLayer({ prefix, liveness: LIVENESS });
    const child = await startChild({ prefix, liveness: false }, group, 3);
    await judge.newChannel(); // the judge registers
    const registry = placementOf(judge, REGISTRY_NAME);
    const key = prefix + REGISTRY_NAME;
    await kill(child, 'SIGKILL');
    // Until the judge's own heartbeats have run for deadAfterMs and two periods more.
    const [seconds] = await registry.time();
    const until = Number(seconds) * 1000 + LIVENESS.deadAfterMs + 2 * LIVENESS.heartbeatMs + 1000;
    const judgeScore = async (): Promise<number> =>
      Number(await registry.zscore(key, judge.clientPrefix));
    await waitFor(async () => (await judgeScore()) > until, { timeoutMs: 10_000 });
    assert.equal(await registry.zscore(key, child.client), null, 'never registered');
    assert.equal(await judge.groupSize(group), 3);
    await judge.groupSend(group, { type: 'still' });
    const queueName = `specific.${child.client}!`;
    assert.equal(await placementOf(judge, queueName).zcard(prefix + queueName), 1);
    assert.equal((await groupMembers(judge, prefix, group)).length, 3);
    assert.equal(judge.stats().deadRemoved, 0);
  });

  it("heartbeats go on after the registry server's script cache is flushed (EVAL on NOSCRIPT)", async () => {
    const prefix = 'live-flush';
    const layer = makeLayer({ prefix, liveness: LIVENESS });
    const errors: unknown[] = [];
    layer.on('error', (err) => errors.push(err));
    await layer.newChannel(); // registers
    const registry = placementOf(layer, REGISTRY_NAME);
    const key = prefix + REGISTRY_NAME;
    await waitFor(async () => (await registry.zscore(key, layer.clientPrefix)) !== null);
    await registry.script('FLUSH');
    const [seconds] = await registry.time();
    const flushedAt = Number(seconds) * 1000;
    // The next heartbeats meet NOSCRIPT, send the script itself and keep the score moving.
    await waitFor(async () => Number(await registry.zscore(key, layer.clientPrefix)) > flushedAt, {
      timeoutMs: 5_000,
    });
    assert.deepEqual(errors, []);
  });

  it('the registry shard restarted after an outage: nobody is declared dead until deadAfterMs after it is back', async () => {
    const prefix = 'live-outage';
    const group = 'room';
    // A server of its own, saving into a dir of its own: the registry survives its restart with
    // the scores of before (as with persistence); a server without --dir would save into, and
    // load from, the current directory.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chanlayer-live-'));
    const single = await startRedis({ args: ['--dir', dir] });
    after(async () => {
      await single.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const hosts = single.urls;
    const judge = makeLayer({ hosts, prefix, liveness: LIVENESS });
    // A process whose next heartbeat comes long after the outage: only the guard keeps the judge
    // from declaring it dead the moment the registry is back.
    const slow = makeLayer({
      hosts,
      prefix,
      liveness: { heartbeatMs: 60_000, deadAfterMs: 120_000 },
    });
    const slowChannel = await slow.newChannel();
    await slow.groupAdd(group, slowChannel);
    await judge.newChannel();
    const server = single.servers[0]!;
    const key = prefix + REGISTRY_NAME;
    const client = (): Redis => {
      const c = new Redis(server.url, { maxRetriesPerRequest: 1 });
      c.on('error', () => {});
      raws.push(c);
      return c;
    };
    await waitFor(async () => (await client().zcard(key)) === 2, { what: 'both registered' });
    await client().save();
    await server.kill();
    await delay(LIVENESS.deadAfterMs + 500); // the outage, longer than deadAfterMs: the subject
    await server.restart();
    const registry = client();
    const [seconds] = await registry.time();
    const back = Number(seconds) * 1000;
    await waitFor(async () => Number(await registry.zscore(key, judge.clientPrefix)) >= back, {
      timeoutMs: 10_000,
      what: "the judge's first heartbeat after the restart",
    });
    assert.ok(Number(await registry.zscore(key, ':grace')) > back, 'grace period set');
    // The slow process is not dead for the judge: a group message reaches it.
    assert.equal(await judge.groupSize(group), 1);
    await judge.groupSend(group, { type: 'after-outage' });
    assert.deepEqual(await slow.receive(slowChannel, { signal: AbortSignal.timeout(5000) }), {
      type: 'after-outage',
    });
    assert.equal(judge.stats().deadRemoved, 0);
    // The guard only delays the verdict: the slow process is silent, so it is dead after it.
    await waitFor(async () => (await judge.groupSize(group)) === 0, {
      timeoutMs: 10_000,
      what: 'the silent process to be judged once the grace period is over',
    });
  });

  it('validates the option, from Django CONFIG too', () => {
    assert.throws(
      () => new RedisChannelLayer({ liveness: { heartbeatMs: 0 } }),
      ConfigurationError,
    );
    assert.throws(
      () => new RedisChannelLayer({ liveness: { heartbeatMs: 1000, deadAfterMs: 1000 } }),
      /must exceed liveness.heartbeatMs/,
    );
    assert.throws(
      () => new RedisChannelLayer({ liveness: { heartbeat: 5 } as never }),
      /Unknown liveness option "heartbeat" \(did you mean "heartbeatMs"\?\)/,
    );
    assert.throws(() => new RedisChannelLayer({ liveness: 'yes' as never }), ConfigurationError);
    const layer = fromConfig({
      BACKEND: 'channels_redis.core.RedisChannelLayer',
      CONFIG: { hosts: env.redis.urls, liveness: { heartbeat_ms: 100, dead_after_ms: 500 } },
    });
    layers.push(layer as RedisChannelLayer);
    assert.throws(
      () =>
        fromConfig({
          BACKEND: 'channels_redis.core.RedisChannelLayer',
          CONFIG: { liveness: { dead_after: 500 } },
        }),
      /Unknown liveness option "dead_after" \(did you mean "dead_after_ms"\?\)/,
    );
  });
});
