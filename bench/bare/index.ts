/** The scenario the bare client runs (`--impl bare`): the same scenario code as chanlayer's. */
import { crossProcessPingPong, pingPongScenario, twoLayerPingPong } from '../scenarios/pingpong.ts';
import { startPonger } from '../scenarios/remote.ts';
import type { ScenarioId, ScenarioParams, ScenarioResult } from '../types.ts';
import { BarePubSub } from './pubsub.ts';

/**
 * Pub/Sub ping-pong only: its figure is round trips and almost no client work, so a client
 * with no layer shows the floor. (A bare groupSend client was tried too and came out slower
 * than chanlayer: there the figure is client CPU, and a bare client is not a floor of that.)
 */
export const BARE_SCENARIOS: readonly ScenarioId[] = [
  'pubsub-pingpong',
  'pubsub-pingpong-2layer',
  'pubsub-pingpong-2proc',
];

/** The one URL a bare client connects to (it has no cluster mode). */
export function bareUrl(hosts: ScenarioParams['hosts']): string {
  const host = hosts[0];
  if (typeof host !== 'string') throw new Error('the bare client runs on a redis:// URL only');
  return host;
}

export async function runBareScenario(p: ScenarioParams): Promise<ScenarioResult> {
  const host = bareUrl(p.hosts);
  const a = await BarePubSub.connect(host);
  const b = p.scenario === 'pubsub-pingpong-2layer' ? await BarePubSub.connect(host) : a;
  try {
    switch (p.scenario) {
      case 'pubsub-pingpong':
        return await pingPongScenario(a, p);
      case 'pubsub-pingpong-2layer':
        return await twoLayerPingPong(a, b, p);
      case 'pubsub-pingpong-2proc':
        return await crossProcessPingPong(a, p, (replyTo) =>
          startPonger({
            kind: 'pubsub',
            hosts: p.hosts,
            replyTo,
            stallSeconds: p.stallSeconds,
            bare: true,
          }),
        );
      default:
        throw new Error(`no bare client for ${p.scenario}`);
    }
  } finally {
    await Promise.all([a.close(), b === a ? undefined : b.close()]);
  }
}
