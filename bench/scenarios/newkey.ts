/**
 * A receiver on a key the reader is not reading yet: the core layer's reader sits in a block
 * over the keys it already reads, so a receive on a new normal channel must wake it (the wake
 * key, no `CLIENT UNBLOCK`) before the send can be popped. Each round measures send→receive on a
 * fresh channel, then on a channel whose receive is always waiting (already in the block): the
 * reference in the same run. Receiver and sender are two layers in this process.
 */
import { percentileSorted } from '../stats.ts';
import type { ScenarioResult } from '../types.ts';
import { Watchdog, benchMessage, now, type BenchLayer } from './common.ts';

interface NewKeyParams {
  duration: number;
  warmup: number;
  stallSeconds: number;
}

export async function newKeyScenario(
  receiver: BenchLayer,
  sender: BenchLayer,
  p: NewKeyParams,
): Promise<ScenarioResult> {
  const fresh: number[] = [];
  const known: number[] = [];
  const watchdog = new Watchdog(p.stallSeconds * 1000);
  const measureFrom = now() + p.warmup * 1000;
  const end = measureFrom + p.duration * 1000;
  const knownChannel = 'bench.newkey.known';
  const run = async (): Promise<void> => {
    let waiting = receiver.receive(knownChannel);
    for (let i = 0; ; i++) {
      const start = now();
      if (start >= end) break;
      const channel = `bench.newkey.${i}`;
      const got = receiver.receive(channel);
      let t = now();
      await sender.send(channel, benchMessage(i));
      await got;
      if (start >= measureFrom) fresh.push(now() - t);

      t = now();
      await sender.send(knownChannel, benchMessage(i));
      await waiting;
      waiting = receiver.receive(knownChannel);
      if (start >= measureFrom) known.push(now() - t);
      watchdog.progress();
    }
    await sender.send(knownChannel, benchMessage(-1));
    await waiting;
  };
  try {
    await watchdog.race(run());
  } finally {
    watchdog.stop();
  }
  fresh.sort((a, b) => a - b);
  known.sort((a, b) => a - b);
  return {
    metrics: {
      p50: percentileSorted(fresh, 50),
      p99: percentileSorted(fresh, 99),
      knownP50: percentileSorted(known, 50),
      knownP99: percentileSorted(known, 99),
    },
    info: { samples: fresh.length, max: fresh[fresh.length - 1] },
  };
}
