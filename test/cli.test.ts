/**
 * The `chanlayer` command end to end: the CLI runs as a child process (node + tsx, as the test
 * runner runs the sources) against real redis-servers holding what real chanlayer layers and a
 * real channels_redis process (Python, Debian's 4.0.0) wrote, plus liveness registry entries
 * written in the registry's format (notes: liveness design — ZADD of a client prefix scored with
 * the server's time in ms; the layer side lands with issue 18 part 1).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import calculateSlot from 'cluster-key-slot';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RedisChannelLayer } from '../lib/index.ts';
import { parseCli } from '../lib/cli/args.ts';
import { openShards } from '../lib/cli/connect.ts';
import { snapshotOptions } from '../lib/cli/inspect.ts';
import { queueRates } from '../lib/cli/rates.ts';
import { takeSnapshot } from '../lib/cli/snapshot.ts';
import { crc32Placement } from '../lib/redis/placement.ts';
import { PythonPeer, type PyLayer } from './interop/peer.ts';
import {
  redisCommand,
  startRedis,
  startSentinelTopology,
  type RedisGroup,
  type SentinelTopology,
} from './harness/redis.ts';
import { waitFor, within } from './harness/wait.ts';
import { startCluster, type Cluster } from './harness/cluster.ts';
import { README_PASSWORD, README_USER, README_USERNAME } from './harness/readme-user.ts';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = resolve(ROOT, 'lib/cli.ts');
/** The README user without any write command: proves the command is read-only. */
const READ_ONLY_USER = 'ro on >ro ~asgi* &* +@all -@dangerous -@write';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Commands still running: killed after the tests (a failed test must leave no process). */
const children = new Set<ReturnType<typeof spawn>>();

/** The command as a child process; `env` replaces CHANNEL_LAYERS (unset unless given). */
function spawnCli(args: string[], env: Record<string, string> = {}) {
  const { CHANNEL_LAYERS: _, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out.stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out.stderr += s));
  const done = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    ...out,
  }));
  return { child, out, done };
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return within(spawnCli(args, env).done, 30_000, `chanlayer ${args.join(' ')}`);
}

async function serverMs(port: number): Promise<number> {
  const [s, us] = (await redisCommand(port, ['TIME'])) as string[];
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

const layers: RedisChannelLayer[] = [];
/**
 * The tests write the liveness registry themselves (exact heartbeat times): the layers' own
 * heartbeat is off, or it would overwrite them (and its outage guard would hold every verdict).
 */
function layer(hosts: unknown[]): RedisChannelLayer {
  const l = new RedisChannelLayer({ hosts: hosts as string[], liveness: false });
  layers.push(l);
  return l;
}

let one: RedisGroup;
let three: RedisGroup;
let peer: PythonPeer;
let py: PyLayer;

before(async () => {
  [one, three, peer] = await Promise.all([
    startRedis({ user: README_USER }),
    startRedis({ count: 3 }),
    PythonPeer.start(),
  ]);
  await redisCommand(one.servers[0]!.port, ['ACL', 'SETUSER', ...READ_ONLY_USER.split(' ')]);
  py = await peer.core({ hosts: one.urls });
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(layers.map((l) => l.close()));
  await peer?.stop();
  await Promise.all([one?.stop(), three?.stop()]);
});

describe('chanlayer inspect', () => {
  /** What the first Redis holds, for the tests below (set up once, by the first test). */
  const world = {} as {
    node: RedisChannelLayer;
    nodeChannels: string[];
    pyChannel: string;
    deadClient: string;
    deadAt: number;
    aliveAt: number;
    firstSendAt: number;
  };

  test('--json: groups, queues and processes of chanlayer and channels_redis, exactly', async () => {
    const port = one.servers[0]!.port;
    const node = layer(one.urls);
    world.node = node;
    world.firstSendAt = Date.now();
    await node.send('jobs', { type: 'a' });
    await node.send('jobs', { type: 'b' });
    await node.send('jobs', { type: 'c' });
    world.nodeChannels = [await node.newChannel(), await node.newChannel()];
    for (const ch of world.nodeChannels) await node.groupAdd('room', ch);
    await node.send(world.nodeChannels[0]!, { type: 'direct' });

    // channels_redis: a member of the same group, and a normal channel with two messages.
    world.pyChannel = await py.newChannel();
    await py.groupAdd('room', world.pyChannel);
    await py.send('py.jobs', { type: 'x' });
    await py.send('py.jobs', { type: 'y' });

    // The registry: this layer alive, another process silent for a minute (dead), with a
    // channel still in the group. An expired membership. Keys to skip.
    const now = await serverMs(port);
    world.aliveAt = now;
    world.deadAt = now - 60_000;
    world.deadClient = 'deadbeefdeadbeefdeadbeefdeadbeef';
    await redisCommand(port, [
      'ZADD',
      'asgi:processes',
      String(world.aliveAt),
      node.clientPrefix,
      String(world.deadAt),
      world.deadClient,
      String(now + 3_600_000),
      ':special', // members starting with ':' are not processes
    ]);
    await redisCommand(port, [
      'ZADD',
      'asgi:group:room',
      String(now / 1000),
      `specific.${world.deadClient}!abc`,
      String(now / 1000 - 86_400 - 10),
      'expired.member',
    ]);
    await redisCommand(port, ['SET', 'asgi.not-a-zset', 'x']);
    await redisCommand(port, ['ZADD', 'asgijobs$inflight', '1', 'popped']);
    await redisCommand(port, ['ZADD', 'other:queue', '1', 'not ours']);

    const run = await runCli(['inspect', '--json', '--hosts', one.urls[0]!]);
    const finishedAt = Date.now();
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    const out = JSON.parse(run.stdout) as {
      groups: unknown[];
      queues: Array<{ channel: string; depth: number; oldestAgeMs: number }>;
      processes: unknown[];
    };
    assert.deepEqual(Object.keys(out), ['groups', 'queues', 'processes']);
    // 2 chanlayer channels + 1 channels_redis channel; not the dead process's, not the expired one.
    assert.deepEqual(out.groups, [{ name: 'room', members: 3 }]);
    const queues = out.queues.map(({ channel, depth }) => ({ channel, depth }));
    assert.deepEqual(queues, [
      { channel: 'jobs', depth: 3 },
      { channel: 'py.jobs', depth: 2 },
      { channel: `specific.${node.clientPrefix}!`, depth: 1 },
    ]);
    for (const q of out.queues) {
      assert.deepEqual(Object.keys(q), ['channel', 'depth', 'oldestAgeMs']);
      assert.ok(Number.isInteger(q.oldestAgeMs) && q.oldestAgeMs >= 0);
      assert.ok(q.oldestAgeMs <= finishedAt - world.firstSendAt + 50, `${q.channel} age`);
    }
    // The oldest of 'jobs' was sent before the others: it is the oldest queue.
    assert.ok(out.queues[0]!.oldestAgeMs >= out.queues[1]!.oldestAgeMs);
    assert.deepEqual(out.processes, [
      { client: world.deadClient, alive: false, lastSeenMs: world.deadAt },
      { client: node.clientPrefix, alive: true, lastSeenMs: world.aliveAt },
    ]);

    // --dead-after above a minute: the silent process is alive, and its channel a member.
    const lenient = await runCli([
      'inspect',
      '--json',
      '--dead-after',
      '120000',
      '--hosts',
      one.urls[0]!,
    ]);
    const parsed = JSON.parse(lenient.stdout) as typeof out;
    assert.deepEqual(parsed.groups, [{ name: 'room', members: 4 }]);
    assert.ok(parsed.processes.every((p) => (p as { alive: boolean }).alive));
  });

  test('text output fits 80 columns; --limit bounds the scan', async () => {
    const run = await runCli(['inspect', '--hosts', one.urls[0]!]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split('\n');
    for (const line of lines) assert.ok(line.length <= 80, `≤ 80 columns: ${JSON.stringify(line)}`);
    assert.match(run.stdout, /^room +3$/m);
    assert.match(run.stdout, /^jobs +3 +\d/m);
    assert.match(run.stdout, /^PROCESSES \(2, 1 dead\)/m);
    assert.match(run.stdout, new RegExp(`^${world.deadClient} +DEAD +1m\\d\\ds ago$`, 'm'));

    const limited = await runCli(['inspect', '--json', '--limit', '2', '--hosts', one.urls[0]!]);
    assert.equal(limited.code, 0, limited.stderr);
    assert.match(limited.stderr, /stopped after 2 keys \(--limit\)/);
    const out = JSON.parse(limited.stdout) as { groups: unknown[]; queues: unknown[] };
    assert.ok(out.groups.length + out.queues.length <= 2);
  });

  test('as the README least-privilege user, and as a user that may not write at all', async () => {
    const port = one.servers[0]!.port;
    const asDefault = JSON.parse(
      (await runCli(['inspect', '--json', '--hosts', one.urls[0]!])).stdout,
    ) as {
      groups: unknown;
      processes: unknown;
    };
    const [readme, password] = [README_USERNAME, README_PASSWORD];
    for (const [user, pw] of [
      [readme, password],
      ['ro', 'ro'],
    ]) {
      const run = await runCli([
        'inspect',
        '--json',
        '--hosts',
        `redis://${user}:${pw}@127.0.0.1:${port}`,
      ]);
      assert.equal(run.code, 0, `${user}: ${run.stderr}`);
      const out = JSON.parse(run.stdout) as typeof asDefault;
      assert.deepEqual(out.groups, asDefault.groups, user);
      assert.deepEqual(out.processes, asDefault.processes, user);
    }
    assert.deepEqual(await redisCommand(port, ['ACL', 'LOG']), [], 'nothing refused');
  });

  test('CHANNEL_LAYERS (--layer): three shards, a queue on two of them, the registry on its shard', async () => {
    const hosts = three.urls;
    const node = layer(hosts);
    const other = layer(hosts);
    const ch = await node.newChannel();
    await other.send(ch, { type: 'one' }); // placed by its non-local name
    // channels_redis #221: a send to the same process queue placed by the full name, elsewhere.
    const queueKey = `myapp${ch.slice(0, ch.indexOf('!') + 1)}`;
    const home = crc32Placement(3).index(ch.slice(0, ch.indexOf('!') + 1));
    const away = (home + 1) % 3;
    await redisCommand(three.servers[away]!.port, [
      'ZADD',
      queueKey,
      String(Date.now() / 1000 - 5),
      'raw',
    ]);
    // Groups land on their own shards; the registry on the shard of ':processes'.
    for (const g of ['alpha', 'beta', 'gamma', 'delta']) await node.groupAdd(g, ch);
    const registry = crc32Placement(3).index(':processes');
    const port = three.servers[registry]!.port;
    await redisCommand(port, [
      'ZADD',
      'myapp:processes',
      String(await serverMs(port)),
      node.clientPrefix,
    ]);

    const config = JSON.stringify({
      default: {
        BACKEND: 'channels_redis.core.RedisChannelLayer',
        CONFIG: { hosts: ['redis://127.0.0.1:1'] },
      },
      app: {
        BACKEND: 'channels_redis.core.RedisChannelLayer',
        CONFIG: { hosts, prefix: 'asgi', group_expiry: 3600, liveness: { dead_after_ms: 5000 } },
      },
    });
    const run = await runCli(['inspect', '--json', '--layer', 'app'], { CHANNEL_LAYERS: config });
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as {
      groups: Array<{ name: string; members: number }>;
      queues: Array<{ channel: string; depth: number }>;
    };
    assert.deepEqual(out.groups.map((g) => g.name).sort(), ['alpha', 'beta', 'delta', 'gamma']);
    assert.ok(out.groups.every((g) => g.members === 1));
    assert.deepEqual(
      out.queues.map(({ channel, depth }) => ({ channel, depth })),
      [{ channel: ch.slice(0, ch.indexOf('!') + 1), depth: 1 }],
    );

    // With prefix myapp: the #221 copy (depth 1, on another shard) and the registry.
    const my = await runCli(['inspect', '--json', '--layer', 'app', '--prefix', 'myapp'], {
      CHANNEL_LAYERS: config,
    });
    assert.equal(my.code, 0, my.stderr);
    const mine = JSON.parse(my.stdout) as {
      queues: unknown[];
      processes: Array<{ client: string; alive: boolean }>;
    };
    assert.deepEqual(
      (mine.queues as Array<{ channel: string; depth: number }>).map(({ channel, depth }) => ({
        channel,
        depth,
      })),
      [{ channel: ch.slice(0, ch.indexOf('!') + 1), depth: 1 }],
    );
    assert.deepEqual(
      mine.processes.map(({ client, alive }) => ({ client, alive })),
      [{ client: node.clientPrefix, alive: true }],
    );

    // The alias that points at nothing: exit 1, the shard named, nothing hangs.
    const down = await runCli(['inspect', '--json'], { CHANNEL_LAYERS: config });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /shard 0: .*127\.0\.0\.1:1/);
  });

  test('flags: hosts given several ways, group expiry, dead-after from the configuration', async () => {
    const a = 'redis://127.0.0.1:7001';
    const b = 'redis://127.0.0.1:7002';
    for (const argv of [
      ['inspect', '--hosts', a, b],
      ['inspect', '--hosts', a, '--hosts', b],
    ]) {
      assert.deepEqual(
        parseCli(argv, {}).shards.map((s) => s.url),
        [a, b],
        argv.join(' '),
      );
    }
    assert.throws(() => parseCli(['inspect', a], {}), /unexpected argument/);
    const env = {
      CHANNEL_LAYERS: JSON.stringify({
        default: {
          BACKEND: 'chanlayer.RedisChannelLayer',
          CONFIG: { hosts: [a], prefix: 'p', liveness: { deadAfterMs: 9000 } },
        },
      }),
    };
    const fromEnv = parseCli(['top'], env);
    assert.deepEqual(
      [fromEnv.prefix, fromEnv.deadAfterMs, fromEnv.groupExpiryMs],
      ['p', 9000, 86_400_000],
    );
    assert.equal(
      parseCli(['top', '--dead-after', '5', '--group-expiry', '0.5'], env).deadAfterMs,
      5,
    );
    assert.equal(parseCli(['top', '--group-expiry', '0.5'], env).groupExpiryMs, 500);

    // Every membership in 'room' is older than 1 ms: none is live.
    const run = await runCli([
      'inspect',
      '--json',
      '--group-expiry',
      '0.001',
      '--hosts',
      one.urls[0]!,
    ]);
    assert.deepEqual((JSON.parse(run.stdout) as { groups: unknown }).groups, [
      { name: 'room', members: 0 },
    ]);
  });

  test("the registry's outage grace period: nobody is declared dead during it", async () => {
    const port = one.servers[0]!.port;
    const now = await serverMs(port);
    await redisCommand(port, ['ZADD', 'grace:processes', String(now - 60_000), 'silent']);
    const verdict = async (): Promise<unknown> =>
      (
        JSON.parse(
          (await runCli(['inspect', '--json', '--prefix', 'grace', '--hosts', one.urls[0]!]))
            .stdout,
        ) as { processes: unknown }
      ).processes;
    assert.deepEqual(await verdict(), [
      { client: 'silent', alive: false, lastSeenMs: now - 60_000 },
    ]);
    await redisCommand(port, ['ZADD', 'grace:processes', String(now + 60_000), ':grace']);
    assert.deepEqual(await verdict(), [
      { client: 'silent', alive: true, lastSeenMs: now - 60_000 },
    ]);
  });

  test('bad arguments: exit 2 with the reason and the usage', async () => {
    for (const args of [['frobnicate'], ['inspect', '--limit', 'zero'], ['inspect', '--nope']]) {
      const run = await runCli(args);
      assert.equal(run.code, 2, args.join(' '));
      assert.match(run.stderr, /^chanlayer: .+\n\nusage: chanlayer/);
    }
    const layers = await runCli(['inspect', '--layer', 'missing'], { CHANNEL_LAYERS: '{}' });
    assert.equal(layers.code, 2);
    assert.match(layers.stderr, /CHANNEL_LAYERS has no layer "missing"/);
    const memory = await runCli(['inspect'], {
      CHANNEL_LAYERS: JSON.stringify({
        default: { BACKEND: 'channels.layers.InMemoryChannelLayer' },
      }),
    });
    assert.equal(memory.code, 2);
    assert.match(memory.stderr, /InMemoryChannelLayer: it keeps nothing in Redis/);
  });
});

describe('chanlayer top', () => {
  test('rates: what arrived and what left between two snapshots', async () => {
    const node = layer(three.urls);
    const opts = parseCli(['top', '--hosts', ...three.urls]);
    const shards = await openShards(opts);
    try {
      const base = { ...snapshotOptions(opts, shards), withMembers: true };
      await node.send('rates.q', { type: 'before' });
      const first = await takeSnapshot(shards, base);
      const since = new Map([...first.samples].map(([id, s]) => [id, s.newest]));
      for (let i = 0; i < 4; i++) await node.send('rates.q', { type: 'in' });
      // A consumer takes two (popped the way channels_redis does; a layer's receive may
      // prefetch more, which would make the expected figures depend on its timing).
      const port = three.servers[crc32Placement(3).index('rates.q')]!.port;
      await redisCommand(port, ['ZPOPMIN', 'asgirates.q', '2']);
      const second = await takeSnapshot(shards, { ...base, since });
      const seconds = (second.at - first.at) / 1000;
      const r = queueRates(first, second).get('rates.q')!;
      // 4 sent (3 of them still there, newer than the first snapshot's newest: counted as in),
      // 2 received. The one received of the 4 is invisible: in is a lower bound.
      assert.equal(Math.round(r.in * seconds), 3);
      assert.equal(Math.round(r.out * seconds), 1 + 3 - 3);
    } finally {
      for (const s of shards) s.close();
    }
  });

  test('--once: one frame of at most 80 columns, dead processes and the deepest queues', async () => {
    const run = await runCli(['top', '--once', '--hosts', one.urls[0]!]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(!run.stdout.includes('\x1b'), 'no screen control');
    const lines = run.stdout.trimEnd().split('\n');
    for (const line of lines) assert.ok(line.length <= 80, JSON.stringify(line));
    assert.match(run.stdout, /^QUEUES \(deepest 3 of 3\)/m);
    assert.match(run.stdout, /^DEAD PROCESSES \(1 of 2\)/m);
    assert.match(run.stdout, /^#0 redis:\/\/127\.0\.0\.1:\d+ +ok +\d+\.\d\dms/m);
  });

  test('live: refreshes, shows what arrives, and on SIGINT closes everything and exits 0', async () => {
    const port = one.servers[0]!.port;
    const { child, out, done } = spawnCli(['top', '--interval', '200', '--hosts', one.urls[0]!]);
    const frames = (): string[] => out.stdout.split('\x1b[H\x1b[2J').slice(1);
    await waitFor(() => frames().length >= 1, { what: 'a first frame', timeoutMs: 20_000 });
    assert.ok(out.stdout.startsWith('\x1b[?1049h\x1b[?25l'), 'alternate screen, cursor hidden');
    // Messages sent now show as arriving in a later frame.
    const node = layer(one.urls);
    for (let i = 0; i < 5; i++) await node.send('top.live', { type: 'x' });
    await waitFor(() => frames().some((f) => /^top\.live +5 .* [1-9][\d.]* +0\.0$/m.test(f)), {
      what: () => `a frame with top.live arriving; last: ${frames().at(-1)}`,
      timeoutMs: 20_000,
    });
    const clients = String(await redisCommand(port, ['CLIENT', 'LIST']));
    assert.match(
      clients,
      /name=chanlayer:cli /,
      'its connection is there (so the check below can fail)',
    );

    child.kill('SIGINT');
    // No forced exit in the command: it ends only once every connection and timer is closed.
    const run = await within(done, 5000, 'top exits after SIGINT');
    assert.deepEqual([run.code, run.signal], [0, null], run.stderr);
    assert.ok(run.stdout.endsWith('\x1b[?25h\x1b[?1049l'), 'cursor and screen restored');
    // (The server notices the closed socket on its next event loop turn.)
    await waitFor(
      async () => !/name=chanlayer:cli /.test(String(await redisCommand(port, ['CLIENT', 'LIST']))),
      { what: 'the connection to be gone', timeoutMs: 2000 },
    );
  });
});

describe('Sentinel', () => {
  let topo: SentinelTopology | undefined;
  after(() => topo?.stop());

  test('a Sentinel group in CHANNEL_LAYERS is read through the sentinels', async () => {
    topo = await startSentinelTopology();
    const hosts = [{ sentinels: topo.sentinels, masterName: topo.masterName }];
    const node = layer(hosts);
    await node.send('via.sentinel', { type: 'x' });
    await node.groupAdd('sentinel-room', await node.newChannel());
    const config = JSON.stringify({
      default: {
        BACKEND: 'channels_redis.core.RedisChannelLayer',
        CONFIG: { hosts: [{ sentinels: topo.sentinels, master_name: topo.masterName }] },
      },
    });
    const run = await runCli(['inspect', '--json'], { CHANNEL_LAYERS: config });
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { groups: unknown; queues: Array<{ channel: string }> };
    assert.deepEqual(out.groups, [{ name: 'sentinel-room', members: 1 }]);
    assert.deepEqual(
      out.queues.map((q) => q.channel),
      ['via.sentinel'],
    );
    await node.close(); // before the servers stop (after()), or it logs their loss
  });
});

describe('Redis Cluster', () => {
  let cluster: Cluster | undefined;
  after(() => cluster?.stop());

  test('a { cluster } hosts entry: every master is scanned, the registry found on its slot', async () => {
    cluster = await startCluster({ masters: 3, replicasPerMaster: 0 });
    const hosts = [{ cluster: cluster.startupNodes() }];
    const node = layer(hosts);
    const ch = await node.newChannel();
    // Names chosen to land on several masters.
    const groups = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];
    for (const g of groups) await node.groupAdd(g, ch);
    for (const q of ['w1', 'w2', 'w3', 'w4']) await node.send(q, { type: 'x' });
    const owners = new Set(
      await Promise.all(
        groups.map(async (g) => (await cluster!.ownerOf(calculateSlot(`asgi:group:${g}`))).port),
      ),
    );
    assert.ok(owners.size > 1, 'the groups are on more than one master');
    const registry = await cluster.ownerOf(calculateSlot('asgi:processes'));
    const now = await serverMs(registry.port);
    await redisCommand(registry.port, ['ZADD', 'asgi:processes', String(now), node.clientPrefix]);

    const config = JSON.stringify({
      default: { BACKEND: 'chanlayer.RedisChannelLayer', CONFIG: { hosts } },
    });
    const run = await runCli(['inspect', '--json'], { CHANNEL_LAYERS: config });
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as {
      groups: Array<{ name: string; members: number }>;
      queues: Array<{ channel: string; depth: number }>;
      processes: unknown;
    };
    assert.deepEqual(
      out.groups.map((g) => [g.name, g.members]).sort(),
      groups.map((g) => [g, 1]),
    );
    assert.deepEqual(out.queues.map((q) => [q.channel, q.depth]).sort(), [
      ['w1', 1],
      ['w2', 1],
      ['w3', 1],
      ['w4', 1],
    ]);
    assert.deepEqual(out.processes, [{ client: node.clientPrefix, alive: true, lastSeenMs: now }]);
    const top = await runCli(['top', '--once'], { CHANNEL_LAYERS: config });
    assert.equal(top.code, 0, top.stderr);
    assert.match(top.stdout, /· 3 shard\(s\) ·/);
    await node.close();
  });
});
