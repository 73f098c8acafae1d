/** Fills a channel up to its capacity: what capacity tests measure. */
import assert from 'node:assert/strict';
import { ChannelFull } from '../../lib/errors.ts';
import type { ChannelLayer } from '../../lib/types.ts';

/** Sends until ChannelFull; returns how many were accepted. Leaves the channel full. */
export async function fill(layer: ChannelLayer, channel: string, max = 1000): Promise<number> {
  for (let i = 0; i < max; i++) {
    try {
      await layer.send(channel, { type: 'fill', n: i });
    } catch (err) {
      assert.ok(err instanceof ChannelFull, `expected ChannelFull, got ${String(err)}`);
      return i;
    }
  }
  assert.fail(`${channel} never filled up in ${max} sends`);
}
