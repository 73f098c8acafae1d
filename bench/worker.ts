/**
 * One chanlayer (or bare-client, bench/bare/) scenario run in a fresh process (started by
 * run.ts with --expose-gc, possibly pinned to a core): isolation keeps one scenario's heap, JIT
 * state and leftover timers out of the next, and matches the Python side, which also runs one
 * process per scenario run.
 *
 * Usage: node --expose-gc --import tsx bench/worker.ts '<ScenarioParams JSON>'
 * Prints one line `BENCH_RESULT <ScenarioResult JSON>` on stdout.
 */
import { runBareScenario } from './bare/index.ts';
import { loadChanlayer, runScenario } from './scenarios/index.ts';
import { RESULT_MARK, type ScenarioParams, type ScenarioResult } from './types.ts';

async function main(): Promise<void> {
  const params = JSON.parse(process.argv[2] ?? '') as ScenarioParams;
  let run = (): Promise<ScenarioResult> => runBareScenario(params);
  if (!params.bare) {
    const chanlayer = await loadChanlayer(params.inMemory === true, params.lib);
    if (typeof chanlayer === 'string') throw new Error(chanlayer);
    run = () => runScenario(chanlayer.make, params);
  }
  // Process CPU over the whole run (setup and warm-up too), for the per-message CPU figure.
  const cpu0 = process.cpuUsage();
  const result = await run();
  const cpu = process.cpuUsage(cpu0);
  result.info = { ...result.info, cpuMs: (cpu.user + cpu.system) / 1000 };
  process.stdout.write(RESULT_MARK + JSON.stringify(result) + '\n');
}

main().then(
  // Exit explicitly: a layer that leaves a handle open must not hang the whole bench.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
