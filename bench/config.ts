/** Command line of `npm run bench` and the knobs it turns into ScenarioParams. */
import { parseArgs } from 'node:util';
import type { ScenarioParams } from './types.ts';

export const USAGE = `usage: npm run bench -- [options]

  --reps N          repetitions of every run (default 3; --quick: 1)
  --quick           smoke run: short runs, small groups, 1 rep (results go to bench/results/quick/)
  --duration S      measured seconds per streaming / ping-pong run (default 3)
  --warmup S        seconds run and discarded before each (default 1)
  --apart-warmup S  the same for the ping-pongs with a layer per side, *-pingpong-2proc and
                    *-pingpong-2layer (default 5; --quick: 0.5): two Node processes JIT-compile
                    on one core for their first seconds (docs/performance.md, the cross-process tail)
  --skip-cluster    no Redis Cluster rows (by default the core and Pub/Sub scenarios marked in
                    bench/plan.ts ON_CLUSTER also run on a 3-master cluster, after their 3-host run)
  --pin             CPU pinning with taskset: Redis on core 0, clients (and this process) on core 1
  --only LIST       comma-separated scenario or ceiling ids (e.g. core-seq,ping), or substrings
  --impl LIST       chanlayer,channels_redis,bare,redis-benchmark (default all four; bare: the
                    bare Node client of bench/bare/: the floor of the Pub/Sub ping-pong rows)
  --out DIR         where latest.json and the SVGs go (default bench/results)
  --from FILE       no measuring: rebuild table and charts from a results JSON
  --inmemory        self-test of the harness: chanlayer scenarios on InMemoryChannelLayer
  -h, --help`;

export interface Options {
  reps: number;
  quick: boolean;
  pin: boolean;
  /** Run the ON_CLUSTER scenarios on a 3-master Redis Cluster too. */
  cluster: boolean;
  only?: string[];
  impls: Set<string>;
  out: string;
  from?: string;
  /** Warm-up (s) of the two-sided ping-pongs, instead of `params.warmup`. */
  apartWarmup: number;
  params: Omit<ScenarioParams, 'scenario' | 'hosts'>;
}

export function parseOptions(argv: string[]): Options | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      reps: { type: 'string' },
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'apart-warmup': { type: 'string' },
      pin: { type: 'boolean', default: false },
      'skip-cluster': { type: 'boolean', default: false },
      only: { type: 'string' },
      impl: { type: 'string' },
      out: { type: 'string' },
      from: { type: 'string' },
      inmemory: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  const quick = values.quick === true;
  const num = (v: string | undefined, fallback: number, name: string): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} wants a positive number`);
    return n;
  };
  return {
    reps: Math.round(num(values.reps, quick ? 1 : 3, 'reps')),
    quick,
    pin: values.pin === true,
    cluster: values['skip-cluster'] !== true,
    only: values.only
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    impls: new Set(
      (values.impl ?? 'chanlayer,channels_redis,bare,redis-benchmark')
        .split(',')
        .map((s) => s.trim()),
    ),
    // Smoke and self-test runs must not overwrite the committed measured set.
    out: values.out ?? (quick || values.inmemory ? 'bench/results/quick' : 'bench/results'),
    from: values.from,
    apartWarmup: num(values['apart-warmup'], quick ? 0.5 : 5, 'apart-warmup'),
    params: {
      duration: num(values.duration, quick ? 0.5 : 3, 'duration'),
      warmup: num(values.warmup, quick ? 0.2 : 1, 'warmup'),
      iterations: quick ? 3 : 20,
      warmupIterations: quick ? 1 : 3,
      inflight: 64,
      groupSize: 1000,
      bigGroupSize: quick ? 10_000 : 100_000,
      memoryChannels: quick ? 10_000 : 100_000,
      stallSeconds: quick ? 5 : 10,
      inMemory: values.inmemory === true,
    },
  };
}
