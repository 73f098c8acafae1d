/**
 * Channel and group name rules (README, "Quick start"), nonLocalName, and the promise discipline:
 * every layer method reports a bad name as a rejected promise, never a synchronous throw, and a
 * rejected call leaves the layer untouched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { InvalidChannelName, InvalidGroupName } from '../lib/errors.ts';
import {
  MAX_NAME_LENGTH,
  assertChannelName,
  assertGroupName,
  isProcessLocal,
  nonLocalName,
} from '../lib/names.ts';
import { InMemoryChannelLayer } from '../lib/layers/in-memory.ts';
import { RedisChannelLayer } from '../lib/layers/redis.ts';
import { RedisPubSubChannelLayer } from '../lib/layers/redis-pubsub.ts';
import type { ChannelLayer } from '../lib/types.ts';
import { startRedis, type RedisGroup } from './harness/redis.ts';

const VALID_CHANNELS = [
  'a',
  'Z',
  '0',
  'chat',
  'chat.room-1_B',
  '...',
  '-_-',
  'a'.repeat(99),
  'specific.abc!',
  'specific.abc!xyz',
  'specific.abc!x-y.z_0',
  'x!',
  `${'a'.repeat(50)}!${'b'.repeat(48)}`, // 99 characters with the bang
];

const INVALID_CHANNEL_STRINGS = [
  '',
  'a'.repeat(100),
  'a'.repeat(150),
  `${'a'.repeat(50)}!${'b'.repeat(49)}`, // 100 characters with the bang
  'bad name',
  ' leading',
  'trailing ',
  'tab\there',
  'new\nline',
  'ünïcödé',
  'chat.é',
  '日本語',
  'emoji😀',
  'a/b',
  'a:b',
  'a*b',
  'a+b',
  'a,b',
  '!abc', // nothing before the bang
  '!',
  'a!b!c', // two bangs
  'a!!',
  'a!b c',
  'a!é',
  'a!b/c',
  'chat\u0000',
  'ｆｕｌｌwidth',
];

const NON_STRINGS: unknown[] = [
  undefined,
  null,
  0,
  42,
  Number.NaN,
  10n,
  true,
  {},
  ['chat'],
  Symbol('chat'),
  () => 'chat',
  new String('chat'),
  Buffer.from('chat'),
  Object.create(null),
  { toString: () => 'chat' },
  {
    toString() {
      throw new Error('toString must not be called');
    },
  },
];

const VALID_GROUPS = ['g', 'group.name-1_X', 'a'.repeat(99), '...'];

const INVALID_GROUP_STRINGS = [
  '',
  'a'.repeat(100),
  'bad group',
  'grüppe',
  'g!',
  'g!x',
  '!g',
  'g/h',
  'g\n',
  '😀',
];

function label(v: unknown): string {
  if (typeof v === 'string')
    return v.length > 20 ? `${JSON.stringify(v.slice(0, 12))}… (${v.length})` : JSON.stringify(v);
  if (typeof v === 'symbol' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  if (typeof v === 'function') return 'function';
  return Object.prototype.toString.call(v);
}

describe('channel names', () => {
  it('MAX_NAME_LENGTH is 100 (names must be shorter)', () => {
    assert.equal(MAX_NAME_LENGTH, 100);
  });

  for (const name of VALID_CHANNELS) {
    it(`accepts ${label(name)}`, () => {
      assert.doesNotThrow(() => assertChannelName(name));
    });
  }

  for (const name of INVALID_CHANNEL_STRINGS) {
    it(`rejects ${label(name)}`, () => {
      assert.throws(
        () => assertChannelName(name),
        (err: unknown) => {
          assert.ok(err instanceof InvalidChannelName, `got ${String(err)}`);
          assert.ok(err instanceof TypeError, 'InvalidChannelName extends TypeError');
          assert.equal(err.name, 'InvalidChannelName');
          assert.equal(err.channel, name);
          return true;
        },
      );
    });
  }

  for (const value of NON_STRINGS) {
    it(`rejects the non-string ${label(value)} with InvalidChannelName`, () => {
      assert.throws(() => assertChannelName(value), InvalidChannelName);
    });
  }

  it('says why a too-long name is refused', () => {
    assert.throws(() => assertChannelName('a'.repeat(100)), /length must be < 100/);
  });
});

describe('group names', () => {
  for (const name of VALID_GROUPS) {
    it(`accepts ${label(name)}`, () => {
      assert.doesNotThrow(() => assertGroupName(name));
    });
  }

  for (const name of INVALID_GROUP_STRINGS) {
    it(`rejects ${label(name)}`, () => {
      assert.throws(
        () => assertGroupName(name),
        (err: unknown) => {
          assert.ok(err instanceof InvalidGroupName, `got ${String(err)}`);
          assert.ok(err instanceof TypeError, 'InvalidGroupName extends TypeError');
          assert.equal(err.name, 'InvalidGroupName');
          assert.equal(err.group, name);
          return true;
        },
      );
    });
  }

  for (const value of NON_STRINGS) {
    it(`rejects the non-string ${label(value)} with InvalidGroupName`, () => {
      assert.throws(() => assertGroupName(value), InvalidGroupName);
    });
  }

  it('a group error is not a channel error and vice versa', () => {
    assert.throws(
      () => assertGroupName('bad group'),
      (e) => !(e instanceof InvalidChannelName),
    );
    assert.throws(
      () => assertChannelName('bad name'),
      (e) => !(e instanceof InvalidGroupName),
    );
  });
});

describe('nonLocalName / isProcessLocal', () => {
  const cases: Array<[string, string, boolean]> = [
    ['chat', 'chat', false],
    ['specific.abc', 'specific.abc', false],
    ['specific.abc!', 'specific.abc!', true],
    ['specific.abc!xyz', 'specific.abc!', true],
    ['a!b-c.d_e', 'a!', true],
  ];
  for (const [channel, expected, local] of cases) {
    it(`${channel} → ${expected}`, () => {
      assert.equal(nonLocalName(channel), expected);
      assert.equal(isProcessLocal(channel), local);
    });
  }
});

/** Calls `fn` and asserts it returns a promise rather than throwing; returns that promise. */
function callAsync(fn: () => Promise<unknown>): Promise<unknown> {
  let p: Promise<unknown> | undefined;
  assert.doesNotThrow(() => {
    p = fn();
  }, 'must not throw synchronously');
  assert.ok(p instanceof Promise, 'must return a promise');
  return p;
}

describe('InMemoryChannelLayer methods reject bad names (never throw synchronously)', () => {
  const layer = new InMemoryChannelLayer({ capacity: 5 });
  after(() => layer.close());
  const msg = { type: 'test.message' };
  const bad = [
    'bad name',
    '',
    'a'.repeat(100),
    'ünï',
    'a!b!c',
    42,
    null,
    undefined,
  ] as unknown as string[];

  for (const name of bad) {
    it(`channel ${label(name)}`, async () => {
      await assert.rejects(
        callAsync(() => layer.send(name, msg)),
        InvalidChannelName,
      );
      await assert.rejects(
        callAsync(() => layer.receive(name)),
        InvalidChannelName,
      );
      await assert.rejects(
        callAsync(() => layer.groupAdd('group', name)),
        InvalidChannelName,
      );
      await assert.rejects(
        callAsync(() => layer.groupDiscard('group', name)),
        InvalidChannelName,
      );
      await assert.rejects(
        callAsync(() => layer.deleteChannel(name)),
        InvalidChannelName,
      );
    });

    it(`group ${label(name)}`, async () => {
      await assert.rejects(
        callAsync(() => layer.groupAdd(name, 'chat')),
        InvalidGroupName,
      );
      await assert.rejects(
        callAsync(() => layer.groupDiscard(name, 'chat')),
        InvalidGroupName,
      );
      await assert.rejects(
        callAsync(() => layer.groupSend(name, msg)),
        InvalidGroupName,
      );
    });
  }

  it('a group name with a bang is refused where the channel form would be fine', async () => {
    await assert.rejects(
      callAsync(() => layer.groupAdd('g!x', 'chat')),
      InvalidGroupName,
    );
    await assert.rejects(
      callAsync(() => layer.groupSend('g!x', msg)),
      InvalidGroupName,
    );
  });

  it('newChannel with a prefix that makes a bad name rejects', async () => {
    await assert.rejects(
      callAsync(() => layer.newChannel('bad prefix')),
      InvalidChannelName,
    );
    await assert.rejects(
      callAsync(() => layer.newChannel('ü')),
      InvalidChannelName,
    );
    await assert.rejects(
      callAsync(() => layer.newChannel('a'.repeat(80))),
      InvalidChannelName,
    );
  });

  it('rejected calls leave the layer untouched', async () => {
    const before = layer.stats();
    await assert.rejects(layer.send('bad name', msg), InvalidChannelName);
    await assert.rejects(layer.groupSend('bad group', msg), InvalidGroupName);
    assert.deepEqual(layer.stats(), before);
    assert.equal(layer.activeChannels, 0);
    await layer.send('good', { type: 'ok' });
    assert.deepEqual(await layer.receive('good'), { type: 'ok' });
  });

  it('a 99-character channel works end to end; a 100-character one does not', async () => {
    const ok = 'c'.repeat(99);
    await layer.send(ok, { type: 'long' });
    assert.deepEqual(await layer.receive(ok), { type: 'long' });
    await assert.rejects(layer.send('c'.repeat(100), { type: 'long' }), InvalidChannelName);
  });
});

describe('the Redis layers reject bad names the same way (never throw synchronously)', () => {
  let redis: RedisGroup;
  const layers: Array<ChannelLayer & { deleteChannel(c: string): Promise<void> }> = [];
  before(async () => {
    redis = await startRedis({ count: 1 });
    layers.push(
      new RedisChannelLayer({ hosts: redis.urls }),
      new RedisPubSubChannelLayer({ hosts: redis.urls }),
    );
  });
  after(async () => {
    await Promise.all(layers.map((l) => l.close()));
    await redis?.stop();
  });
  const msg = { type: 'test.message' };

  it('every method, for every kind of bad name', async () => {
    for (const layer of layers) {
      const kind = layer.constructor.name;
      for (const name of [
        'bad name',
        '',
        'a'.repeat(100),
        'ünï',
        'a!b!c',
        7,
      ] as unknown as string[]) {
        const what = `${kind} ${label(name)}`;
        await assert.rejects(
          callAsync(() => layer.send(name, msg)),
          InvalidChannelName,
          what,
        );
        await assert.rejects(
          callAsync(() => layer.receive(name)),
          InvalidChannelName,
          what,
        );
        await assert.rejects(
          callAsync(() => layer.groupAdd('group', name)),
          InvalidChannelName,
          what,
        );
        await assert.rejects(
          callAsync(() => layer.groupDiscard('group', name)),
          InvalidChannelName,
          what,
        );
        await assert.rejects(
          callAsync(() => layer.deleteChannel(name)),
          InvalidChannelName,
          what,
        );
        await assert.rejects(
          callAsync(() => layer.groupAdd(name, 'chat')),
          InvalidGroupName,
          what,
        );
        await assert.rejects(
          callAsync(() => layer.groupDiscard(name, 'chat')),
          InvalidGroupName,
          what,
        );
        await assert.rejects(
          callAsync(() => layer.groupSend(name, msg)),
          InvalidGroupName,
          what,
        );
      }
      await assert.rejects(
        callAsync(() => layer.newChannel('bad prefix')),
        InvalidChannelName,
        kind,
      );
      // Still usable afterwards.
      const c = await layer.newChannel();
      const got = layer.receive(c);
      await layer.send(c, { type: 'after-bad-names' });
      assert.deepEqual(await got, { type: 'after-bad-names' }, kind);
    }
  });
});
