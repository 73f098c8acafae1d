/**
 * Configuration: fromConfig, channelLayers.configure / getChannelLayer, Django's snake_case CONFIG
 * keys and Python BACKEND paths, CHANNEL_LAYERS from the environment, the in-memory default.
 *
 * The layer manager is a module singleton, so every case that depends on the environment or on
 * "nothing configured yet" runs in a child process of its own (`node --import tsx`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, afterEach, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  ConfigurationError,
  InMemoryChannelLayer,
  MessageTooLarge,
  RedisChannelLayer,
  RedisPubSubChannelLayer,
  channelLayers,
  fromConfig,
  getChannelLayer,
  type ChannelLayer,
} from '../lib/index.ts';
import { fromDjangoConfig, resolveOptions, type ClusterHost } from '../lib/config.ts';
import { parseCluster } from '../lib/redis/hosts.ts';
import { LOOPBACK, redisCommand, startRedis, type RedisGroup } from './harness/redis.ts';
import { fill } from './harness/fill.ts';
import { waitFor } from './harness/wait.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const INDEX = new URL('../lib/index.ts', import.meta.url).href;

const built: ChannelLayer[] = [];
/** Remembers a layer so it is closed after the test. */
function keep<T extends ChannelLayer | undefined>(layer: T): T {
  if (layer) built.push(layer);
  return layer;
}
afterEach(async () => {
  await Promise.all(built.splice(0).map((l) => l.close()));
});

/**
 * Runs `body` (an async ESM snippet with the chanlayer index imported as `C`) in a fresh Node
 * process with `env` added, and returns the JSON the snippet passes to `out(...)`. The child
 * must exit on its own: a layer left open would hang it until the timeout fails the test.
 */
async function child<T = unknown>(
  body: string,
  env: Record<string, string | undefined> = {},
): Promise<T> {
  const code = `
import * as C from ${JSON.stringify(INDEX)};
const out = (v) => process.stdout.write(JSON.stringify(v));
${body}
`;
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', code],
    {
      cwd: ROOT,
      env: childEnv,
      timeout: 30_000,
    },
  );
  return JSON.parse(stdout) as T;
}

describe('fromConfig', () => {
  for (const BACKEND of [
    'chanlayer.InMemoryChannelLayer',
    'channels.layers.InMemoryChannelLayer',
  ]) {
    it(`builds an InMemoryChannelLayer from ${BACKEND}`, async () => {
      const layer = keep(fromConfig({ BACKEND }));
      assert.ok(layer instanceof InMemoryChannelLayer);
      await layer.send('c', { type: 'hello' });
      assert.deepEqual(await layer.receive('c'), { type: 'hello' });
      assert.equal(await fill(layer, 'defaults'), 100, 'no CONFIG: default capacity');
    });
  }

  for (const [BACKEND, Layer] of [
    ['chanlayer.RedisChannelLayer', RedisChannelLayer],
    ['channels_redis.core.RedisChannelLayer', RedisChannelLayer],
    ['chanlayer.RedisPubSubChannelLayer', RedisPubSubChannelLayer],
    ['channels_redis.pubsub.RedisPubSubChannelLayer', RedisPubSubChannelLayer],
  ] as const) {
    it(`builds a ${Layer.name} from ${BACKEND}`, async () => {
      const layer = keep(fromConfig({ BACKEND, CONFIG: { hosts: ['redis://127.0.0.1:1'] } }));
      assert.ok(layer instanceof Layer);
    });
  }

  it('gives each call a new layer', () => {
    const a = keep(fromConfig({ BACKEND: 'chanlayer.InMemoryChannelLayer' }));
    const b = keep(fromConfig({ BACKEND: 'chanlayer.InMemoryChannelLayer' }));
    assert.notEqual(a, b);
  });

  it('an unknown BACKEND throws ConfigurationError (synchronously) naming it', () => {
    for (const BACKEND of ['channels_redis.core.NoSuchLayer', 'myapp.layers.Custom', '']) {
      assert.throws(
        () => fromConfig({ BACKEND }),
        (err: unknown) => err instanceof ConfigurationError && err.message.includes(`"${BACKEND}"`),
      );
    }
    assert.throws(() => fromConfig({} as never), ConfigurationError);
    assert.throws(() => fromConfig(null as never), ConfigurationError);
  });

  it('an ioredis keyPrefix in a hosts entry is refused, pointing at the layer prefix', () => {
    const entries = [
      { address: 'redis://127.0.0.1:6379', keyPrefix: 'app:' },
      { sentinels: [['127.0.0.1', 26379]], masterName: 'm', keyPrefix: 'app:' },
    ];
    for (const Layer of [RedisChannelLayer, RedisPubSubChannelLayer]) {
      for (const entry of entries) {
        assert.throws(
          () => new Layer({ hosts: [entry as never] }),
          (err: unknown) =>
            err instanceof ConfigurationError &&
            err.message.includes('hosts[0].keyPrefix') &&
            err.message.includes('`prefix`'),
        );
      }
    }
  });

  it('a bare string for hosts throws ConfigurationError', () => {
    for (const BACKEND of [
      'channels_redis.core.RedisChannelLayer',
      'channels_redis.pubsub.RedisPubSubChannelLayer',
    ]) {
      assert.throws(
        () => fromConfig({ BACKEND, CONFIG: { hosts: 'redis://127.0.0.1:6379' } }),
        (err: unknown) => err instanceof ConfigurationError && /hosts/.test(err.message),
      );
    }
  });

  it('an unknown serializer_format throws ConfigurationError naming it', () => {
    assert.throws(
      () =>
        fromConfig({
          BACKEND: 'chanlayer.InMemoryChannelLayer',
          CONFIG: { serializer_format: 'yaml-ish' },
        }),
      (err: unknown) => err instanceof ConfigurationError && err.message.includes('yaml-ish'),
    );
  });

  it('bad numbers in CONFIG throw ConfigurationError', () => {
    for (const CONFIG of [
      { capacity: 0 },
      { expiry: -1 },
      { group_expiry: 'soon' },
      { channel_capacity: { 'a.*': 1.5 } },
    ]) {
      assert.throws(
        () => fromConfig({ BACKEND: 'chanlayer.InMemoryChannelLayer', CONFIG }),
        ConfigurationError,
        JSON.stringify(CONFIG),
      );
    }
  });

  it('a value of the wrong type is shown with its type', () => {
    assert.throws(
      () => new InMemoryChannelLayer({ capacity: '10' } as never),
      (err: unknown) =>
        err instanceof ConfigurationError &&
        err.message === 'capacity must be a positive integer, got "10" (a string)',
    );
  });

  it('an unknown option key is refused, naming the closest valid one in the same spelling', () => {
    const cases: Array<[() => unknown, string]> = [
      [
        () => new InMemoryChannelLayer({ capcity: 10 } as never),
        'capcity" (did you mean "capacity"',
      ],
      [
        () => new RedisChannelLayer({ hosts: ['redis://127.0.0.1:1'], groupExpiri: 1 } as never),
        'groupExpiri" (did you mean "groupExpiry"',
      ],
      [
        () =>
          fromConfig({
            BACKEND: 'channels_redis.core.RedisChannelLayer',
            CONFIG: { hosts: ['redis://127.0.0.1:1'], group_expiri: 5 },
          }),
        'group_expiri" (did you mean "group_expiry"',
      ],
      [
        () =>
          channelLayers.configure({
            default: { BACKEND: 'chanlayer.InMemoryChannelLayer', CONFIG: { expirey: 1 } },
          }),
        'expirey" (did you mean "expiry"',
      ],
    ];
    for (const [build, expected] of cases) {
      assert.throws(
        build,
        (err: unknown) => err instanceof ConfigurationError && err.message.includes(expected),
        expected,
      );
    }
  });
});

describe("Django's snake_case CONFIG keys take effect", () => {
  const BACKEND = 'channels.layers.InMemoryChannelLayer';

  it('capacity and channel_capacity (globs incl. a ! pattern; first match wins)', async () => {
    const layer = keep(
      fromConfig({
        BACKEND,
        CONFIG: {
          capacity: 2,
          channel_capacity: { 'http.request': 6, 'http.response!*': 4, 'http.*': 3 },
        },
      }),
    );
    assert.equal(await fill(layer, 'plain'), 2);
    assert.equal(await fill(layer, 'http.request'), 6);
    assert.equal(await fill(layer, 'http.response!abc'), 4);
    assert.equal(await fill(layer, 'http.other'), 3);
  });

  it('camelCase keys work in CONFIG too', async () => {
    const layer = keep(
      fromConfig({ BACKEND, CONFIG: { capacity: 1, channelCapacity: { 'x.*': 3 } } }),
    );
    assert.equal(await fill(layer, 'y'), 1);
    assert.equal(await fill(layer, 'x.y'), 3);
  });

  it('expiry (fractional)', async () => {
    const layer = keep(fromConfig({ BACKEND, CONFIG: { expiry: 0.1 } })) as InMemoryChannelLayer;
    await layer.send('exp', { type: 'old' });
    await waitFor(() => layer.stats().expired === 1, { what: 'the message to expire' });
    await layer.send('exp', { type: 'new' });
    assert.deepEqual(await layer.receive('exp'), { type: 'new' });
  });

  it('group_expiry (fractional)', async () => {
    const layer = keep(
      fromConfig({ BACKEND, CONFIG: { group_expiry: 0.1 } }),
    ) as InMemoryChannelLayer;
    const addedAt = Date.now();
    await layer.groupAdd('g', 'member');
    await waitFor(() => Date.now() - addedAt > 150, { what: '0.15 s' });
    await layer.groupSend('g', { type: 'too-late' });
    assert.equal(layer.stats().groupDeliveries, 0);
    await layer.send('member', { type: 'marker' });
    assert.deepEqual(await layer.receive('member'), { type: 'marker' });
  });

  it('serializer_format and max_message_bytes', async () => {
    const layer = keep(
      fromConfig({ BACKEND, CONFIG: { serializer_format: 'json', max_message_bytes: 100 } }),
    );
    await assert.rejects(
      layer.send('c', { type: 't', b: new Uint8Array(1) }),
      /message\.b .*not valid JSON/,
    );
    await assert.rejects(layer.send('c', { type: 't', s: 'x'.repeat(100) }), MessageTooLarge);
    await layer.send('c', { type: 't', s: 'ok' });
    assert.deepEqual(await layer.receive('c'), { type: 't', s: 'ok' });
  });
});

describe('fromConfig with a real Redis (Python BACKEND paths, Django hosts tuples)', () => {
  let redis: RedisGroup;
  before(async () => {
    redis = await startRedis({ count: 1 });
  });
  after(() => redis?.stop());

  it('channels_redis.core.RedisChannelLayer: prefix, capacity, channel_capacity, random_prefix_length', async () => {
    const port = redis.servers[0]!.port;
    const layer = keep(
      fromConfig({
        BACKEND: 'channels_redis.core.RedisChannelLayer',
        CONFIG: {
          hosts: [[LOOPBACK, port]],
          prefix: 'cfgtest',
          capacity: 2,
          channel_capacity: { 'wide.*': 4 },
          random_prefix_length: 12,
          group_expiry: 5,
        },
      }),
    ) as RedisChannelLayer;
    assert.ok(layer instanceof RedisChannelLayer);
    assert.equal(await fill(layer, 'narrow'), 2);
    assert.equal(await fill(layer, 'wide.one'), 4);
    const keys = (await redisCommand(port, ['KEYS', '*'])) as string[];
    assert.ok(keys.length > 0);
    for (const key of keys)
      assert.ok(key.startsWith('cfgtest'), `key ${key} does not use the configured prefix`);
    assert.deepEqual(await layer.receive('narrow'), { type: 'fill', n: 0 });
    await layer.flush();
  });

  it('channels_redis.pubsub.RedisPubSubChannelLayer delivers with a Django hosts tuple', async () => {
    const port = redis.servers[0]!.port;
    const layer = keep(
      fromConfig({
        BACKEND: 'channels_redis.pubsub.RedisPubSubChannelLayer',
        CONFIG: { hosts: [[LOOPBACK, port]], prefix: 'cfgps' },
      }),
    );
    assert.ok(layer instanceof RedisPubSubChannelLayer);
    const channel = await layer.newChannel();
    const got = layer.receive(channel);
    await layer.send(channel, { type: 'over-pubsub' });
    assert.deepEqual(await got, { type: 'over-pubsub' });
  });
});

describe('channelLayers.configure / getChannelLayer', () => {
  after(() => channelLayers.configure({}));

  it('builds on first use, caches, and gives undefined for an unconfigured alias', async () => {
    channelLayers.configure({
      default: { BACKEND: 'chanlayer.InMemoryChannelLayer', CONFIG: { capacity: 1 } },
      other: { BACKEND: 'channels.layers.InMemoryChannelLayer', CONFIG: { capacity: 3 } },
    });
    const a = keep(getChannelLayer());
    assert.ok(a instanceof InMemoryChannelLayer);
    assert.equal(getChannelLayer('default'), a);
    assert.equal(getChannelLayer(), a);
    const other = keep(getChannelLayer('other'));
    assert.ok(other instanceof InMemoryChannelLayer);
    assert.notEqual(other, a);
    assert.equal(await fill(a, 'c'), 1);
    assert.equal(await fill(other!, 'c'), 3);
    assert.equal(getChannelLayer('missing'), undefined);
    assert.equal(channelLayers.get('missing'), undefined);
  });

  it('configure() replaces the configuration and forgets cached layers without closing them', async () => {
    channelLayers.configure({
      default: { BACKEND: 'chanlayer.InMemoryChannelLayer', CONFIG: { capacity: 1 } },
    });
    const old = keep(getChannelLayer())!;
    channelLayers.configure({
      default: { BACKEND: 'chanlayer.InMemoryChannelLayer', CONFIG: { capacity: 2 } },
    });
    const fresh = keep(getChannelLayer())!;
    assert.notEqual(fresh, old);
    assert.equal(await fill(fresh, 'c'), 2, 'the new configuration is used');
    // The old layer was not closed: it still works.
    await old.send('still-open', { type: 'x' });
    assert.deepEqual(await old.receive('still-open'), { type: 'x' });
    channelLayers.configure({ other: { BACKEND: 'chanlayer.InMemoryChannelLayer' } });
    assert.equal(getChannelLayer(), undefined, 'default is no longer configured');
    assert.ok(keep(getChannelLayer('other')) instanceof InMemoryChannelLayer);
  });

  it('an unknown BACKEND in configure() throws naming it and the alias, and changes nothing', () => {
    channelLayers.configure({ default: { BACKEND: 'chanlayer.InMemoryChannelLayer' } });
    const before = keep(getChannelLayer());
    assert.throws(
      () =>
        channelLayers.configure({
          default: { BACKEND: 'chanlayer.InMemoryChannelLayer' },
          chat: { BACKEND: 'channels_rabbitmq.core.RabbitmqChannelLayer' },
        }),
      (err: unknown) =>
        err instanceof ConfigurationError &&
        err.message.includes('channels_rabbitmq.core.RabbitmqChannelLayer') &&
        err.message.includes('chat'),
    );
    assert.equal(getChannelLayer(), before, 'the previous configuration and its layers stay');
  });

  it('configure() throws synchronously on bad CONFIG (bare string hosts, unknown serializer_format)', () => {
    channelLayers.configure({ default: { BACKEND: 'chanlayer.InMemoryChannelLayer' } });
    const before = keep(getChannelLayer());
    assert.throws(
      () =>
        channelLayers.configure({
          default: {
            BACKEND: 'channels_redis.core.RedisChannelLayer',
            CONFIG: { hosts: 'redis://127.0.0.1:6379' },
          },
        }),
      (err: unknown) => err instanceof ConfigurationError && /hosts/.test(err.message),
    );
    assert.throws(
      () =>
        channelLayers.configure({
          default: {
            BACKEND: 'chanlayer.InMemoryChannelLayer',
            CONFIG: { serializer_format: 'no-such-format' },
          },
        }),
      (err: unknown) => err instanceof ConfigurationError && err.message.includes('no-such-format'),
    );
    assert.equal(getChannelLayer(), before, 'a refused configure() changes nothing');
  });

  it('configure() refuses a non-object', () => {
    assert.throws(() => channelLayers.configure(null as never), ConfigurationError);
  });
});

describe('environment and defaults (each in a fresh process)', () => {
  it('with nothing configured and no CHANNEL_LAYERS, the default is an InMemoryChannelLayer', async () => {
    const got = await child(
      `
const layer = C.getChannelLayer();
const again = C.getChannelLayer('default');
await layer.send('c', { type: 'x' });
const msg = await layer.receive('c');
out({ name: layer.constructor.name, inMemory: layer instanceof C.InMemoryChannelLayer, same: layer === again,
      other: C.getChannelLayer('other') === undefined, msg });
await layer.close();`,
      { CHANNEL_LAYERS: undefined },
    );
    assert.deepEqual(got, {
      name: 'InMemoryChannelLayer',
      inMemory: true,
      same: true,
      other: true,
      msg: { type: 'x' },
    });
  });

  it('CHANNEL_LAYERS JSON (a pasted Django block) is read when nothing is configured', async () => {
    const CHANNEL_LAYERS = JSON.stringify({
      default: {
        BACKEND: 'channels.layers.InMemoryChannelLayer',
        CONFIG: { capacity: 2, channel_capacity: { 'big.*': 5 } },
      },
      second: { BACKEND: 'chanlayer.InMemoryChannelLayer' },
    });
    const got = await child(
      `
async function fill(layer, channel) {
  for (let i = 0; ; i++) {
    try { await layer.send(channel, { type: 'f' }); }
    catch (err) { if (!(err instanceof C.ChannelFull)) throw err; return i; }
  }
}
const layer = C.getChannelLayer();
const second = C.getChannelLayer('second');
out({ inMemory: layer instanceof C.InMemoryChannelLayer, plain: await fill(layer, 'plain'), big: await fill(layer, 'big.x'),
      second: second instanceof C.InMemoryChannelLayer && second !== layer, missing: C.getChannelLayer('missing') === undefined });
await layer.close();
await second.close();`,
      { CHANNEL_LAYERS },
    );
    assert.deepEqual(got, { inMemory: true, plain: 2, big: 5, second: true, missing: true });
  });

  it('configure() wins over CHANNEL_LAYERS', async () => {
    const got = await child(
      `
C.channelLayers.configure({ default: { BACKEND: 'chanlayer.InMemoryChannelLayer', CONFIG: { capacity: 1 } } });
const layer = C.getChannelLayer();
await layer.send('c', { type: 'x' });
let full = false;
try { await layer.send('c', { type: 'x' }); } catch (err) { full = err instanceof C.ChannelFull; }
out({ full, fromEnv: C.getChannelLayer('fromenv') === undefined });
await layer.close();`,
      {
        CHANNEL_LAYERS: JSON.stringify({
          default: { BACKEND: 'chanlayer.InMemoryChannelLayer', CONFIG: { capacity: 50 } },
          fromenv: { BACKEND: 'chanlayer.InMemoryChannelLayer' },
        }),
      },
    );
    assert.deepEqual(got, { full: true, fromEnv: true });
  });

  it('CHANNEL_LAYERS that is not JSON, or names an unknown BACKEND, throws ConfigurationError', async () => {
    const body = `
try { C.getChannelLayer(); out({ threw: false }); }
catch (err) { out({ threw: true, configError: err instanceof C.ConfigurationError, message: err.message }); }`;
    type Outcome = { threw: boolean; configError?: boolean; message?: string };
    const notJson = await child<Outcome>(body, { CHANNEL_LAYERS: "{'default': {}}" });
    assert.equal(notJson.threw, true);
    assert.equal(notJson.configError, true);
    assert.match(notJson.message ?? '', /CHANNEL_LAYERS/);
    const unknown = await child<Outcome>(body, {
      CHANNEL_LAYERS: JSON.stringify({ default: { BACKEND: 'channels_redis.core.Nope' } }),
    });
    assert.equal(unknown.threw, true);
    assert.equal(unknown.configError, true);
    assert.match(unknown.message ?? '', /channels_redis\.core\.Nope/);
  });

  describe('CHANNEL_LAYERS with channels_redis BACKEND paths against a real Redis', () => {
    let redis: RedisGroup;
    before(async () => {
      redis = await startRedis({ count: 1 });
    });
    after(() => redis?.stop());

    it('builds the core and Pub/Sub layers from a pasted Django block and they deliver', async () => {
      const port = redis.servers[0]!.port;
      const CHANNEL_LAYERS = JSON.stringify({
        default: {
          BACKEND: 'channels_redis.core.RedisChannelLayer',
          CONFIG: { hosts: [[LOOPBACK, port]], prefix: 'envcore', capacity: 3 },
        },
        pubsub: {
          BACKEND: 'channels_redis.pubsub.RedisPubSubChannelLayer',
          CONFIG: { hosts: [`redis://${LOOPBACK}:${port}/0`] },
        },
      });
      const got = await child(
        `
const core = C.getChannelLayer();
const ps = C.getChannelLayer('pubsub');
await core.send('env.chan', { type: 'core', n: 1 });
const fromCore = await core.receive('env.chan');
const ch = await ps.newChannel();
const pending = ps.receive(ch);
await ps.send(ch, { type: 'ps', n: 2 });
const fromPs = await pending;
out({ core: core instanceof C.RedisChannelLayer, ps: ps instanceof C.RedisPubSubChannelLayer, fromCore, fromPs });
await core.flush();
await core.close();
await ps.close();`,
        { CHANNEL_LAYERS },
      );
      assert.deepEqual(got, {
        core: true,
        ps: true,
        fromCore: { type: 'core', n: 1 },
        fromPs: { type: 'ps', n: 2 },
      });
    });
  });
});

describe('a Redis Cluster hosts entry', () => {
  const isConfigError = (text: string | RegExp) => (err: unknown) =>
    err instanceof ConfigurationError &&
    (typeof text === 'string' ? err.message.includes(text) : text.test(err.message));

  it('pairs and URLs become startup nodes; auth and TLS go to every node, the rest is ClusterOptions', () => {
    const spec = parseCluster({
      cluster: [['10.0.0.1', 7000], ['10.0.0.2'], 'redis://10.0.0.3:7002', 'redis://[::1]:7003'],
      username: 'app',
      password: 'pw',
      tls: { servername: 'redis.example' },
      scaleReads: 'master',
      slotsRefreshTimeout: 2000,
      redisOptions: { connectTimeout: 500 },
    });
    assert.deepEqual(spec, {
      id: 'cluster:10.0.0.1:7000,10.0.0.2:6379,10.0.0.3:7002,::1:7003',
      startupNodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 6379 },
        { host: '10.0.0.3', port: 7002 },
        { host: '::1', port: 7003 },
      ],
      options: {
        scaleReads: 'master',
        slotsRefreshTimeout: 2000,
        redisOptions: {
          connectTimeout: 500,
          username: 'app',
          password: 'pw',
          tls: { servername: 'redis.example' },
        },
      },
    });
  });

  it('credentials and rediss: in the URLs apply to every node (discovered ones too)', () => {
    const spec = parseCluster({
      cluster: ['rediss://app:p%40ss@h1:7000', 'rediss://app:p%40ss@h2:7001'],
    });
    assert.deepEqual(spec.options.redisOptions, { username: 'app', password: 'p@ss', tls: {} });
    assert.deepEqual(spec.startupNodes, [
      { host: 'h1', port: 7000 },
      { host: 'h2', port: 7001 },
    ]);
    // The same password given twice is no conflict.
    assert.equal(
      parseCluster({ cluster: ['redis://:pw@h1:7000'], password: 'pw' }).options.redisOptions
        ?.password,
      'pw',
    );
  });

  it('a malformed entry throws ConfigurationError naming what is wrong', () => {
    const cases: Array<[unknown, string | RegExp]> = [
      [{ cluster: [] }, 'hosts[0].cluster must be a non-empty list'],
      [{ cluster: 'redis://h:7000' }, 'hosts[0].cluster must be a non-empty list'],
      [{ cluster: [['h', '7000']] }, 'hosts[0].cluster[0] must be [host, port]'],
      [{ cluster: [['h', 0]] }, 'hosts[0].cluster[0] must be [host, port]'],
      [{ cluster: [['h', 70000]] }, 'hosts[0].cluster[0] must be [host, port]'],
      [{ cluster: [['', 7000]] }, 'hosts[0].cluster[0] must be [host, port]'],
      [{ cluster: [['h', 7000, 'x']] }, 'hosts[0].cluster[0] must be [host, port]'],
      [{ cluster: [7000] }, 'hosts[0].cluster[0] must be [host, port]'],
      [{ cluster: ['http://h:7000'] }, 'must use redis:// or rediss://'],
      [{ cluster: ['not a url'] }, 'is not a valid URL'],
      [{ cluster: ['redis://h:7000/1'] }, 'only database 0'],
      [{ cluster: [['h', 7000]], db: 2 }, 'hosts[0].db: Redis Cluster has only database 0'],
      [{ cluster: ['redis://h1:7000', 'rediss://h2:7000'] }, 'the URLs disagree on the scheme'],
      [{ cluster: ['redis://:a@h1:7000', 'redis://:b@h2:7000'] }, 'disagree on the password'],
      [{ cluster: ['redis://:a@h1:7000'], password: 'b' }, 'password in the URLs and in the entry'],
      [{ cluster: [['h', 7000]], keyPrefix: 'x:' }, 'hosts[0].keyPrefix'],
      [{ cluster: [['h', 7000]], redisOptions: { keyPrefix: 'x:' } }, 'redisOptions.keyPrefix'],
      [{ cluster: [['h', 7000]], redisOptions: 'x' }, 'redisOptions must be an object'],
    ];
    for (const [entry, expected] of cases) {
      assert.throws(
        () => parseCluster(entry as ClusterHost),
        isConfigError(expected),
        JSON.stringify(entry),
      );
      // Both layers parse it the same way when constructed.
      for (const Layer of [RedisChannelLayer, RedisPubSubChannelLayer]) {
        assert.throws(() => new Layer({ hosts: [entry as never] }), isConfigError(expected));
      }
    }
  });

  it('must be the only entry of hosts', () => {
    const cluster = { cluster: [['127.0.0.1', 7000]] as [string, number][] };
    for (const hosts of [
      [cluster, 'redis://127.0.0.1:6379'],
      ['redis://127.0.0.1:6379', cluster],
      [cluster, cluster],
    ]) {
      const expected = `only entry of hosts (got ${hosts.length} entries)`;
      for (const Layer of [RedisChannelLayer, RedisPubSubChannelLayer]) {
        assert.throws(() => new Layer({ hosts }), isConfigError(expected));
      }
      assert.throws(
        () =>
          channelLayers.configure({
            x: { BACKEND: 'chanlayer.RedisChannelLayer', CONFIG: { hosts } },
          }),
        isConfigError(expected),
      );
    }
  });

  it("Django JSON's { cluster: [[host, port]] } reaches the cluster parser through fromConfig", async () => {
    const CONFIG = JSON.parse(
      '{"hosts": [{"cluster": [["10.0.0.1", 7000], ["10.0.0.2", 7001]], "password": "pw"}], "cluster_pub_sub": "global"}',
    );
    const options = fromDjangoConfig(CONFIG);
    assert.equal(resolveOptions(options).clusterPubSub, 'global');
    assert.deepEqual(parseCluster(options.hosts![0] as ClusterHost), {
      id: 'cluster:10.0.0.1:7000,10.0.0.2:7001',
      startupNodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
      ],
      options: { redisOptions: { password: 'pw' } },
    });
    // configure() accepts it; the core layer builds on it (connecting lazily: nothing is
    // reached here), the Pub/Sub layer too.
    channelLayers.configure({
      default: { BACKEND: 'channels_redis.core.RedisChannelLayer', CONFIG },
    });
    const pubsub = fromConfig({ BACKEND: 'channels_redis.pubsub.RedisPubSubChannelLayer', CONFIG });
    assert.ok(pubsub instanceof RedisPubSubChannelLayer);
    await pubsub.close();
    channelLayers.configure({});
  });

  it('a prefix with a brace (a hash tag) is refused on a cluster, accepted elsewhere', () => {
    const hosts = [{ cluster: [['127.0.0.1', 7000]] as [string, number][] }];
    for (const prefix of ['a{b}', 'x}', '{']) {
      assert.throws(() => resolveOptions({ hosts, prefix }), isConfigError('must not contain {'));
    }
    assert.equal(resolveOptions({ hosts, prefix: 'asgi:' }).prefix, 'asgi:');
    assert.equal(resolveOptions({ prefix: 'a{b}' }).prefix, 'a{b}');
  });

  it("clusterPubSub: 'sharded' by default, 'global' accepted, anything else refused", () => {
    assert.equal(resolveOptions({}).clusterPubSub, 'sharded');
    assert.equal(resolveOptions({ clusterPubSub: 'global' }).clusterPubSub, 'global');
    for (const bad of ['broadcast', 'Sharded', 1]) {
      assert.throws(
        () => new RedisPubSubChannelLayer({ clusterPubSub: bad as never }),
        isConfigError('Unknown clusterPubSub'),
        String(bad),
      );
    }
    assert.throws(
      () =>
        fromConfig({
          BACKEND: 'channels_redis.pubsub.RedisPubSubChannelLayer',
          CONFIG: { cluster_pub_sub: 'everywhere' },
        }),
      isConfigError('Unknown clusterPubSub "everywhere"'),
    );
  });
});
