/** Dispatch from a scenario id to its chanlayer implementation. */
import type { BenchHost, ScenarioParams, ScenarioResult } from '../types.ts';
import type { BenchLayer } from './common.ts';
import { bigGroupScenario, groupScenario, placementOf, slotsGroupScenario } from './group.ts';
import { memoryScenario } from './memory.ts';
import { newKeyScenario } from './newkey.ts';
import { crossProcessPingPong, pingPongScenario, twoLayerPingPong } from './pingpong.ts';
import { startPonger } from './remote.ts';
import { streamScenario } from './stream.ts';
import { layerStats } from './common.ts';

export type LayerKind = 'core' | 'pubsub';
type LayerCtor = new (options: Record<string, unknown>) => BenchLayer;
export type LayerFactory = (kind: LayerKind, hosts: BenchHost[]) => BenchLayer;

/**
 * Capacity far above any backlog a run builds, on both sides (channels_redis gets the same):
 * the scenarios measure delivery speed, and a ChannelFull would end the run instead.
 */
export const BENCH_CAPACITY = 1_000_000;

const LIB = new URL('../../lib/index.ts', import.meta.url);

export interface Chanlayer {
  make: LayerFactory;
  /** The kinds lib/index.ts exports today (the layers land one at a time). */
  kinds: LayerKind[];
  /** Why a kind is missing, for the skip message. */
  missing: string[];
}

/**
 * Loads the layers from lib/index.ts (or `lib`, the URL of a snapshot's index.ts: see
 * snapshot.ts) by URL rather than a static import, so the harness type-checks and runs its
 * other parts while the layers are still being written. Returns the reason when none is
 * there yet.
 */
export async function loadChanlayer(
  inMemory = false,
  lib: string = LIB.href,
): Promise<Chanlayer | string> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(lib)) as Record<string, unknown>;
  } catch (err) {
    const why = (err as Error).message.split('\n').slice(0, 3).join(' ');
    return `lib/index.ts cannot be loaded (${why})`;
  }
  if (inMemory) {
    // Harness self-test (`--inmemory`): the scenarios against InMemoryChannelLayer, no Redis.
    const mem = mod.InMemoryChannelLayer as LayerCtor | undefined;
    if (typeof mem !== 'function') return 'lib/index.ts does not export InMemoryChannelLayer';
    return {
      make: () => new mem({ capacity: BENCH_CAPACITY }),
      kinds: ['core', 'pubsub'],
      missing: [],
    };
  }
  const ctors: Record<LayerKind, unknown> = {
    core: mod.RedisChannelLayer,
    pubsub: mod.RedisPubSubChannelLayer,
  };
  const kinds = (['core', 'pubsub'] as const).filter((k) => typeof ctors[k] === 'function');
  const missing = (['core', 'pubsub'] as const)
    .filter((k) => !kinds.includes(k))
    .map(
      (k) =>
        `lib/index.ts does not export ${k === 'core' ? 'RedisChannelLayer' : 'RedisPubSubChannelLayer'} yet`,
    );
  if (kinds.length === 0) return missing.join('; ');
  return {
    make: (kind, hosts) => {
      const Ctor = ctors[kind] as LayerCtor | undefined;
      if (typeof Ctor !== 'function') throw new Error(missing.join('; '));
      return new Ctor({ hosts, capacity: BENCH_CAPACITY });
    },
    kinds,
    missing,
  };
}

/**
 * Why a layer of `kind` refuses `hosts` (the Pub/Sub layer a cluster entry, until it runs on
 * one), or undefined when it takes them: such runs are skipped with the reason, not failed. The
 * layer made to find out is closed.
 */
export async function refuses(
  chanlayer: Chanlayer,
  kind: LayerKind,
  hosts: BenchHost[],
): Promise<string | undefined> {
  try {
    await chanlayer.make(kind, hosts).close();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export function layerKindOf(scenario: ScenarioParams['scenario']): LayerKind {
  return scenario.startsWith('pubsub-') ? 'pubsub' : 'core';
}

export async function runScenario(make: LayerFactory, p: ScenarioParams): Promise<ScenarioResult> {
  const kind = layerKindOf(p.scenario);
  const layerOnHosts = (): BenchLayer => make(kind, p.hosts);
  if (p.scenario === 'core-group-big') {
    return bigGroupScenario(layerOnHosts, placementOf(p.hosts), p);
  }
  if (p.scenario === 'core-group-slots') {
    return slotsGroupScenario(layerOnHosts, placementOf(p.hosts), p.groupSize, p);
  }
  if (p.scenario === 'core-group-big-slots') {
    // At most 10 measured rounds (and 1 warm-up) of 100,000 deliveries each.
    return slotsGroupScenario(layerOnHosts, placementOf(p.hosts), p.bigGroupSize, {
      iterations: Math.min(p.iterations, 10),
      warmupIterations: Math.min(p.warmupIterations, 1),
      stallSeconds: p.stallSeconds,
    });
  }
  if (p.scenario.endsWith('-pingpong-2layer')) {
    return twoLayers(make, kind, p.hosts, (ping, pong) => twoLayerPingPong(ping, pong, p));
  }
  if (p.scenario === 'core-newkey') {
    return twoLayers(make, kind, p.hosts, (receiver, sender) =>
      newKeyScenario(receiver, sender, p),
    );
  }
  const layer = make(kind, p.hosts);
  try {
    let result: ScenarioResult;
    switch (p.scenario) {
      case 'core-seq':
        result = await streamScenario(layer, 'bench.seq', 1, p);
        break;
      case 'core-inflight':
        result = await streamScenario(layer, 'bench.inflight', p.inflight, p);
        break;
      case 'core-local':
        result = await streamScenario(layer, await layer.newChannel(), 1, p);
        break;
      case 'pubsub-inflight':
        result = await streamScenario(layer, await layer.newChannel(), p.inflight, p);
        break;
      case 'core-pingpong':
      case 'pubsub-pingpong':
        result = await pingPongScenario(layer, p);
        break;
      case 'core-pingpong-2proc':
      case 'pubsub-pingpong-2proc':
        result = await crossProcessPingPong(layer, p, (replyTo) =>
          startPonger({ kind, hosts: p.hosts, replyTo, stallSeconds: p.stallSeconds, lib: p.lib }),
        );
        break;
      default:
        throw new Error(`${p.scenario} is not a one-layer scenario`);
      case 'core-group':
        result = await groupScenario(layer, p);
        break;
      case 'core-memory':
      case 'pubsub-memory':
        result = await memoryScenario(layer, p);
        break;
    }
    const stats = layerStats(layer);
    return stats ? { ...result, info: { ...result.info, layerStats: stats } } : result;
  } finally {
    await layer.close();
  }
}

/** A scenario with two layers in this one process (each side its own reader and connections). */
async function twoLayers(
  make: LayerFactory,
  kind: LayerKind,
  hosts: BenchHost[],
  run: (a: BenchLayer, b: BenchLayer) => Promise<ScenarioResult>,
): Promise<ScenarioResult> {
  const a = make(kind, hosts);
  const b = make(kind, hosts);
  try {
    return await run(a, b);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}
