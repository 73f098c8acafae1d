/**
 * Heap cost of idle process-local channels: `memoryChannels` channels, each with a receive
 * waiting (an idle consumer, no AbortSignal as Django consumers pass none), measured as the
 * heap delta over the same layer after it has connected and delivered one message (also
 * reported: the delta with the channels created but no receive waiting yet). The names and
 * one pending promise per channel are a floor any layer pays: about 29 MB for 100,000 with a
 * do-nothing layer whose async receive never settles. Needs
 * `--expose-gc` (the worker is started with it) so both readings follow a full collection.
 */
import type { ScenarioResult } from '../types.ts';
import { benchMessage, inBatches, sleep, type BenchLayer } from './common.ts';

async function settledHeap(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('memory scenario needs node --expose-gc');
  // Two passes with a turn of the event loop between: weak refs and finalizers settle.
  gc();
  await sleep(50);
  gc();
  return process.memoryUsage().heapUsed;
}

export async function memoryScenario(
  layer: BenchLayer,
  p: { memoryChannels: number },
): Promise<ScenarioResult> {
  // Warm the layer so connections, scripts and buffers exist before the baseline.
  const warm = await layer.newChannel();
  const got = layer.receive(warm);
  await layer.send(warm, benchMessage(0));
  await got;

  const before = await settledHeap();
  const rssBefore = process.memoryUsage().rss;
  const channels: string[] = new Array(p.memoryChannels);
  // Pub/Sub newChannel subscribes (a round trip): create them 1,000 at a time.
  const idx = Array.from({ length: p.memoryChannels }, (_, i) => i);
  await inBatches(idx, 1000, async (i) => {
    channels[i] = await layer.newChannel();
  });
  // Channels alone (Pub/Sub: subscribed), before any consumer waits on them.
  const created = await settledHeap();
  const pending = channels.map((c) => layer.receive(c));
  await sleep(200);
  const after = await settledHeap();
  const rssAfter = process.memoryUsage().rss;
  // Only now attach handlers (their promises would count otherwise): close() may reject them.
  for (const p of pending) p.catch(() => {});
  return {
    metrics: { heapMB: (after - before) / 2 ** 20 },
    info: {
      channels: p.memoryChannels,
      bytesPerChannel: Math.round((after - before) / p.memoryChannels),
      channelsOnlyMB: (created - before) / 2 ** 20,
      rssDeltaMB: (rssAfter - rssBefore) / 2 ** 20,
    },
  };
}
