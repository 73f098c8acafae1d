/** The scenario the bare client runs (`--impl bare`): the same scenario code as chanlayer's. */
import { pingPongScenario } from '../scenarios/pingpong.ts';
import type { ScenarioId, ScenarioParams, ScenarioResult } from '../types.ts';
import { BarePubSub } from './pubsub.ts';

/**
 * Pub/Sub ping-pong only: its figure is round trips and almost no client work, so a client
 * with no layer shows the floor. (A bare groupSend client was tried too and came out slower
 * than chanlayer: there the figure is client CPU, and a bare client is not a floor of that.)
 */
export const BARE_SCENARIOS: readonly ScenarioId[] = ['pubsub-pingpong'];

export async function runBareScenario(p: ScenarioParams): Promise<ScenarioResult> {
  if (p.scenario !== 'pubsub-pingpong') throw new Error(`no bare client for ${p.scenario}`);
  const layer = await BarePubSub.connect(p.hosts[0]!);
  try {
    return await pingPongScenario(layer, p);
  } finally {
    await layer.close();
  }
}
