/**
 * Errors that say what broke, for both Redis layers against real servers: a wrong password is an
 * AuthenticationError and a closed port a ConnectionError, each naming the shard with the
 * server's or socket's reason in the message and as `cause`; the logger gets one line per shard
 * per outage, however many reconnect attempts fail; Pub/Sub `newChannel`/`groupAdd` are bounded
 * by `commandTimeoutMs`; and `close()` during an outage lets the process exit at once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import {
  AuthenticationError,
  ConnectionError,
  RedisChannelLayer,
  RedisPubSubChannelLayer,
} from '../lib/index.ts';
import { freePort, startRedis, type RedisGroup } from './harness/redis.ts';

const LAYERS = [RedisChannelLayer, RedisPubSubChannelLayer] as const;
const TIMEOUT_MS = 600;

let redis: RedisGroup;
let closedPortUrl: string;
before(async () => {
  redis = await startRedis({ count: 1, password: 'right' });
  closedPortUrl = `redis://127.0.0.1:${await freePort()}`;
});
after(() => redis?.stop());

function layerWith(Layer: (typeof LAYERS)[number], url: string) {
  const warnings: string[] = [];
  const layer = new Layer({
    hosts: [url],
    commandTimeoutMs: TIMEOUT_MS,
    logger: { warn: (m) => warnings.push(m) },
  });
  return { layer, warnings };
}

for (const Layer of LAYERS) {
  describe(`${Layer.name}: connection errors`, () => {
    it('a wrong password: AuthenticationError with WRONGPASS in message and cause, logged once', async () => {
      const wrong = redis.urls[0]!.replace('redis://', 'redis://:wrong@');
      const { layer, warnings } = layerWith(Layer, wrong);
      try {
        for (let i = 0; i < 3; i++) {
          const err = await layer.send('somewhere', { type: 'x' }).then(
            () => assert.fail('send resolved'),
            (e: unknown) => e,
          );
          assert.ok(err instanceof AuthenticationError, String(err));
          assert.ok(err instanceof ConnectionError);
          assert.equal(err.shard, 0);
          assert.match(err.message, /shard 0\).*WRONGPASS/);
          assert.match(String((err.cause as Error).message), /^WRONGPASS/);
        }
        // Several connection attempts failed by now; the logger heard of it once.
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.match(warnings[0]!, /WRONGPASS/);
      } finally {
        await layer.close();
      }
    });

    it('a closed port: ConnectionError with ECONNREFUSED in message and cause, logged once', async () => {
      const { layer, warnings } = layerWith(Layer, closedPortUrl);
      try {
        const err = await layer.send('somewhere', { type: 'x' }).then(
          () => assert.fail('send resolved'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof ConnectionError && !(err instanceof AuthenticationError));
        assert.match(err.message, /shard 0\) is not reachable.*ECONNREFUSED/);
        assert.match(String((err.cause as Error).message), /ECONNREFUSED/);
        await layer.send('somewhere', { type: 'x' }).catch(() => {});
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.match(warnings[0]!, /ECONNREFUSED/);
      } finally {
        await layer.close();
      }
    });
  });
}

describe('RedisPubSubChannelLayer: subscriptions are bounded by commandTimeoutMs', () => {
  it('newChannel and groupAdd reject with ConnectionError when Redis is unreachable', async () => {
    const { layer } = layerWith(RedisPubSubChannelLayer, closedPortUrl);
    try {
      const started = Date.now();
      await assert.rejects(layer.newChannel(), ConnectionError);
      // Bounded: the subscription wait ends at commandTimeoutMs, not when Redis comes back.
      assert.ok(Date.now() - started < TIMEOUT_MS * 10, `${Date.now() - started} ms`);
      // receive() subscribes an unknown normal channel; groupAdd needs a channel of ours,
      // so take one whose subscription is still pending and add it to a group.
      const pending = layer.receive('normal-channel');
      pending.catch(() => {});
      await assert.rejects(layer.groupAdd('room', 'normal-channel'), ConnectionError);
    } finally {
      await layer.close();
    }
  });
});

describe('close() during an outage', () => {
  const child = fileURLToPath(new URL('./fixtures/close-in-outage.ts', import.meta.url));
  for (const kind of ['core', 'pubsub']) {
    it(`${kind}: the process exits promptly after close()`, async () => {
      const server = await startRedis({ count: 1 });
      try {
        const proc = spawn(process.execPath, ['--import', 'tsx', child, kind, server.urls[0]!], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        const connected = new Promise<void>((resolve) =>
          proc.stdout!.on('data', (c: Buffer) => {
            out += c.toString();
            if (out.includes('connected')) resolve();
          }),
        );
        const exited = once(proc, 'exit');
        await connected;
        await server.servers[0]!.kill('SIGKILL');
        const [code] = await exited;
        assert.equal(code, 0, out);
        const ms = Number(/closed-to-exit (\d+)/.exec(out)?.[1]);
        // ioredis's default disconnectTimeout held it 2 s per connection, 2–4 s in all.
        assert.ok(ms < 1000, `exit ${ms} ms after close()`);
      } finally {
        await server.stop();
      }
    });
  }
});

for (const Layer of LAYERS) {
  it(`${Layer.name}: a 'disconnect' listener that throws is reported; the layer reconnects and works`, async () => {
    const server = await startRedis({ count: 1 });
    const warnings: string[] = [];
    const layer = new Layer({ hosts: server.urls, logger: { warn: (m) => warnings.push(m) } });
    try {
      const channel = await layer.newChannel();
      await layer.send(channel, { type: 'before' });
      assert.deepEqual(await layer.receive(channel), { type: 'before' });
      layer.on('disconnect', () => {
        throw new Error('listener bug');
      });
      // Not events.once: it listens to 'error' too, and the layer reports the throw there when
      // anyone listens (to the logger otherwise).
      const reconnected = new Promise((resolve) => layer.once('reconnect', resolve));
      await server.servers[0]!.restart();
      await reconnected;
      assert.ok(
        warnings.some((w) => w.includes("'disconnect' listener") && w.includes('listener bug')),
        warnings.join('\n'),
      );
      const after = layer.receive(channel);
      await layer.send(channel, { type: 'after' });
      assert.deepEqual(await after, { type: 'after' });
    } finally {
      await layer.close();
      await server.stop();
    }
  });
}
