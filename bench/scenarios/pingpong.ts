/**
 * Round-trip latency over two process-local channels of one layer: the pinger sends to B and
 * waits on A, the ponger echoes B→A. One message in flight, so each sample is two full
 * send→receive hops. Samples from the warm-up period are dropped.
 */
import { percentileSorted } from '../stats.ts';
import type { ScenarioResult } from '../types.ts';
import { END, Watchdog, benchMessage, now, type PingPongLayer } from './common.ts';

export async function pingPongScenario(
  layer: PingPongLayer,
  p: { duration: number; warmup: number; stallSeconds: number },
): Promise<ScenarioResult> {
  const a = await layer.newChannel();
  const b = await layer.newChannel();
  const watchdog = new Watchdog(p.stallSeconds * 1000);

  const ponger = (async () => {
    for (;;) {
      const m = await layer.receive(b);
      if (m.type === END) return;
      await layer.send(a, m);
    }
  })();

  const samples: number[] = [];
  let trips = 0;
  const pinger = async (): Promise<void> => {
    const measureFrom = now() + p.warmup * 1000;
    const end = measureFrom + p.duration * 1000;
    for (let i = 0; ; i++) {
      const t = now();
      if (t >= end) break;
      await layer.send(b, benchMessage(i));
      await layer.receive(a);
      watchdog.progress();
      trips++;
      if (t >= measureFrom) samples.push(now() - t);
    }
    await layer.send(b, { type: END });
  };
  try {
    await watchdog.race(Promise.all([pinger(), ponger]));
  } finally {
    watchdog.stop();
  }

  samples.sort((x, y) => x - y);
  return {
    metrics: { p50: percentileSorted(samples, 50), p99: percentileSorted(samples, 99) },
    info: { samples: samples.length, max: samples[samples.length - 1], messages: 2 * trips },
  };
}
