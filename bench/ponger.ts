/**
 * The ponger of the cross-process ping-pong (`*-pingpong-2proc`), in its own process with its
 * own layer: started by the pinger's worker (bench/scenarios/remote.ts), it makes a channel,
 * prints `PONGER_READY <channel>`, echoes every message to the pinger's channel until the end
 * marker, then exits. It exits too when its parent goes (stdin closes) or nothing arrives for
 * the stall time, so a failed run leaves no process behind.
 *
 * Usage: node --import tsx bench/ponger.ts '<PongerParams JSON>'
 */
import { bareUrl } from './bare/index.ts';
import { BarePubSub } from './bare/pubsub.ts';
import { loadChanlayer, type LayerFactory } from './scenarios/index.ts';
import { Watchdog } from './scenarios/common.ts';
import { ponger } from './scenarios/pingpong.ts';
import { PONGER_READY, type PongerParams } from './types.ts';

async function main(): Promise<void> {
  const p = JSON.parse(process.argv[2] ?? '') as PongerParams;
  process.stdin.on('close', () => process.exit(1));
  process.stdin.resume();
  const layer = p.bare ? await BarePubSub.connect(bareUrl(p.hosts)) : await makeLayer(p);
  const watchdog = new Watchdog(p.stallSeconds * 1000);
  try {
    const channel = await layer.newChannel();
    process.stdout.write(`${PONGER_READY}${channel}\n`);
    await watchdog.race(ponger(layer, channel, p.replyTo, () => watchdog.progress()));
  } finally {
    watchdog.stop();
    await layer.close();
  }
}

async function makeLayer(p: PongerParams): Promise<ReturnType<LayerFactory>> {
  const chanlayer = await loadChanlayer(p.inMemory === true, p.lib);
  if (typeof chanlayer === 'string') throw new Error(chanlayer);
  return chanlayer.make(p.kind, p.hosts);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
