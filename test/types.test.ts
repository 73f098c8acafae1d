/**
 * Types that guide: `npm run lint` type-checks this file (tsconfig includes test/, with
 * noUncheckedIndexedAccess), so each `@ts-expect-error` below fails the build if the mistake it
 * marks ever compiles again. The runtime assertions check the same shapes on a real layer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InMemoryChannelLayer, type LayerStats } from '../lib/index.ts';

describe('public types', () => {
  it('stats() is a named counter record: stats().sent is a number', async () => {
    const layer = new InMemoryChannelLayer();
    const channel = await layer.newChannel();
    await layer.send(channel, { type: 'x' });
    const stats: LayerStats = layer.stats();
    const sent: number = stats.sent; // `number | undefined` with a Record<string, number>
    assert.equal(sent, 1);
    // @ts-expect-error a counter that does not exist
    assert.equal(stats.sentt, undefined);
    await layer.close();
  });

  it('event names and listener arguments are checked', async () => {
    const layer = new InMemoryChannelLayer();
    const seen: number[] = [];
    layer.on('disconnect', (shard: number) => seen.push(shard));
    // @ts-expect-error a misspelt event name
    layer.on('disconect', () => {});
    // @ts-expect-error a listener expecting the wrong argument type
    layer.on('reconnect', (shard: string) => shard);
    layer.emit('disconnect', 2);
    assert.deepEqual(seen, [2]);
    await layer.close();
  });
});
