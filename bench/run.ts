/**
 * `npm run bench` (tsx bench/run.ts): chanlayer, channels_redis and redis-benchmark side by
 * side against the same freshly started redis-servers, several repetitions, one table.
 *
 * Every client run is its own process (bench/worker.ts for chanlayer, channels_redis_bench.py
 * for Python, redis-benchmark), started one at a time with every server flushed before it.
 * Figures are medians over repetitions and ratios are taken within a repetition, because the
 * machine is shared and only same-run comparisons mean anything. See docs/performance.md.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, chanlayerArgv, pythonArgv, runChild } from './children.ts';
import { USAGE, parseOptions, type Options } from './config.ts';
import { APART, planRuns, type RunSpec } from './plan.ts';
import { Progress } from './progress.ts';
import { runCeiling, type CeilingId } from './redis-benchmark.ts';
import { buildReport, buildWork, type RepResult, type RunRecord } from './report.ts';
import {
  layerKindOf,
  loadChanlayer,
  refuses,
  type Chanlayer,
  type LayerKind,
} from './scenarios/index.ts';
import { snapshotLib, type LibSnapshot } from './snapshot.ts';
import { addCluster, flushAll, startServers, startWork, type BenchServers } from './servers.ts';
import { charts } from './svg.ts';
import { renderTable, renderWork } from './table.ts';
import type { ScenarioId, ScenarioParams, ScenarioResult } from './types.ts';

interface ResultsFile {
  meta: Record<string, unknown>;
  runs: RunRecord[];
  rows: ReturnType<typeof buildReport>;
  work: ReturnType<typeof buildWork>;
}

const tryRun = (cmd: string, args: string[]): string | undefined => {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
};

/** Hard limit per client run: a hung layer must cost a run, not the whole bench. */
function timeoutFor(id: string, o: Options): number {
  if (id === 'core-group-big' || id === 'core-group-big-slots') return 300_000;
  if (id.endsWith('-memory')) return 180_000;
  return 60_000 + 10_000 * (o.params.duration + Math.max(o.params.warmup, o.apartWarmup));
}

async function runOne(
  spec: RunSpec,
  servers: BenchServers,
  o: Options,
  pin: string[],
): Promise<ScenarioResult> {
  const hosts =
    spec.hosts === 'cluster' ? [servers.cluster!.entry] : servers.urls.slice(0, spec.hosts);
  if (spec.impl === 'redis-benchmark') {
    return runCeiling(spec.id as CeilingId, {
      port: servers.ports[0]!,
      seconds: o.params.duration,
      pin,
    });
  }
  const scenario = spec.id as ScenarioParams['scenario'];
  const params: ScenarioParams = {
    ...o.params,
    scenario,
    hosts,
    ...(APART.includes(scenario) ? { warmup: o.apartWarmup } : {}),
  };
  const argv =
    spec.impl === 'channels_redis'
      ? pythonArgv(pin, params)
      : chanlayerArgv(pin, spec.impl === 'bare' ? { ...params, bare: true } : params);
  return runChild(argv, timeoutFor(spec.id, o));
}

/** A one-line summary of a run for the progress log. */
function brief(r: ScenarioResult): string {
  return Object.entries(r.metrics)
    .map(([k, v]) => `${k} ${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3)}`)
    .join(', ');
}

const log = (message: string): void => void process.stderr.write(`bench: ${message}\n`);

let snapshot: LibSnapshot | undefined;

async function measure(o: Options): Promise<ResultsFile> {
  const meta: Record<string, unknown> = {
    date: new Date().toISOString(),
    commit: tryRun('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    libDirty: (tryRun('git', ['-C', ROOT, 'status', '--porcelain', 'lib']) ?? '') !== '',
    node: process.version,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    loadavgStart: os.loadavg().map((l) => +l.toFixed(2)),
    reps: o.reps,
    quick: o.quick,
    pin: o.pin,
    params: { ...o.params },
    apartWarmup: o.apartWarmup,
    skipped: {} as Record<string, string>,
  };
  const skipped = meta.skipped as Record<string, string>;

  let chanlayer: LayerKind[] = [];
  let loadedChanlayer: Chanlayer | undefined;
  if (o.impls.has('chanlayer')) {
    // Every chanlayer run of this bench tests the lib/ of this moment (see snapshot.ts).
    snapshot = snapshotLib(ROOT);
    o.params.lib = snapshot.index;
    meta.libHash = snapshot.hash;
    const loaded = await loadChanlayer(o.params.inMemory, snapshot.index);
    if (typeof loaded === 'string') {
      skipped.chanlayer = loaded;
      log(`skipping chanlayer: ${loaded}`);
    } else {
      loadedChanlayer = loaded;
      chanlayer = loaded.kinds;
      for (const why of loaded.missing) log(`skipping part of chanlayer: ${why}`);
      if (loaded.missing.length) skipped.chanlayer = loaded.missing.join('; ');
    }
  }
  let python = o.impls.has('channels_redis');
  if (python) {
    try {
      meta.python = (await runChild(pythonArgv([], '--versions'), 30_000)) as unknown;
    } catch (err) {
      skipped.channels_redis = (err as Error).message;
      log(`skipping channels_redis: ${(err as Error).message}`);
      python = false;
    }
  }
  let ceilings = o.impls.has('redis-benchmark');
  meta.redisBenchmark = tryRun('redis-benchmark', ['--version']);
  if (ceilings && !meta.redisBenchmark) {
    skipped['redis-benchmark'] = 'redis-benchmark not found (package redis-tools)';
    log(`skipping ceilings: ${skipped['redis-benchmark']}`);
    ceilings = false;
  }

  let pin: string[] = [];
  if (o.pin) {
    if (os.cpus().length < 2 || !tryRun('taskset', ['-p', String(process.pid)])) {
      throw new Error('--pin needs taskset (util-linux) and at least 2 CPUs');
    }
    // The orchestrator also lives on the client core: it runs the PUBLISH sink.
    execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
    pin = ['taskset', '-c', '1'];
  }

  const only = o.only;
  let runs = planRuns({
    chanlayer,
    python,
    // The bare clients are Redis clients: no floor to show against the in-memory self-test.
    bare: o.impls.has('bare') && !o.params.inMemory,
    ceilings,
    bigGroup: !o.params.inMemory,
    apart: !o.params.inMemory,
    cluster: o.params.inMemory || !o.cluster ? [] : chanlayer,
    only: only && ((id) => only.some((w) => id === w || id.includes(w))),
  });
  if (runs.length === 0) throw new Error('nothing to run (see the skip messages above)');

  const servers = await startServers(3, o.pin ? 0 : undefined);
  meta.redis = servers.version;
  const clusterRuns = runs.filter((r) => r.hosts === 'cluster');
  if (clusterRuns.length > 0) {
    try {
      await addCluster(servers, o.pin ? 0 : undefined);
      const kinds = [...new Set(clusterRuns.map((r) => layerKindOf(r.id as ScenarioId)))];
      const refused = new Map<LayerKind, string>();
      for (const kind of kinds) {
        const why = await refuses(loadedChanlayer!, kind, [servers.cluster!.entry]);
        if (why !== undefined) refused.set(kind, why);
      }
      for (const [kind, why] of refused) {
        skipped[`chanlayer ${kind} on a Redis Cluster`] = why;
        log(`skipping chanlayer ${kind} on a Redis Cluster: ${why}`);
      }
      runs = runs.filter(
        (r) => r.hosts !== 'cluster' || !refused.has(layerKindOf(r.id as ScenarioId)),
      );
    } catch (err) {
      await servers.stop();
      throw err;
    }
  }
  const records = new Map<string, RunRecord>(
    runs.map((r) => [r.key, { key: r.key, impl: r.impl, id: r.id, hosts: r.hosts, reps: [] }]),
  );
  const bar = new Progress(runs.length * o.reps);
  const stop = (): void => {
    snapshot?.remove();
    void servers.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  try {
    for (let rep = 0; rep < o.reps; rep++) {
      for (const spec of runs) {
        bar.begin(`rep ${rep + 1}/${o.reps}  ${spec.key}`);
        let result: RepResult;
        try {
          await flushAll(servers);
          const work = await startWork(servers, spec.hosts === 'cluster');
          result = await runOne(spec, servers, o, pin);
          result.redis = await work();
          bar.end(o.quick ? `${spec.key}: ${brief(result)}` : undefined);
        } catch (err) {
          const message = (err as Error).message;
          result = { error: message };
          bar.end(`${spec.key} failed: ${message.replace(/\n/g, '\n    ')}`);
        }
        records.get(spec.key)!.reps[rep] = result;
      }
    }
  } finally {
    process.off('SIGINT', stop);
    await servers.stop();
  }
  bar.finish();
  meta.loadavgEnd = os.loadavg().map((l) => +l.toFixed(2));
  return { meta, runs: [...records.values()], rows: [], work: [] };
}

/** Lines under the table: what differs from a standard run, and what failed. */
function notes(results: ResultsFile): string[] {
  const out: string[] = [];
  const p = results.meta.params as Options['params'] | undefined;
  if (p?.inMemory)
    out.push('SELF-TEST: "chanlayer" is InMemoryChannelLayer here (--inmemory), not Redis.');
  if (p && (p.bigGroupSize !== 100_000 || p.memoryChannels !== 100_000)) {
    out.push(
      `Sizes differ from the labels: big group ${p.bigGroupSize.toLocaleString('en-US')} members, ` +
        `memory ${p.memoryChannels.toLocaleString('en-US')} channels.`,
    );
  }
  for (const [name, why] of Object.entries(
    (results.meta.skipped ?? {}) as Record<string, string>,
  )) {
    out.push(`Skipped ${name}: ${why}`);
  }
  for (const r of results.runs) {
    r.reps.forEach((rep, i) => {
      if (rep && 'error' in rep) {
        const why = rep.error.replace(/\s*\n\s*/g, ' ⏎ ').slice(0, 240);
        out.push(`Failed ${r.key} (rep ${i + 1}): ${why}`);
      }
    });
  }
  return out;
}

function output(results: ResultsFile, o: Options): void {
  const runs = new Map(results.runs.map((r) => [r.key, r]));
  const reps = Number(results.meta.reps) || 1;
  results.rows = buildReport(runs, reps);
  results.work = buildWork(results.runs);
  const table = renderTable(results.rows, notes(results));
  process.stdout.write(`${table}\n\nRedis work per message:\n\n${renderWork(results.work)}\n`);

  const out = path.resolve(ROOT, o.out);
  fs.mkdirSync(out, { recursive: true });
  if (!o.from) {
    fs.writeFileSync(path.join(out, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  }
  const m = results.meta;
  const note = `${String(m.date).slice(0, 10)} · ${m.cpus} · Redis ${m.redis ?? '?'} · ${reps} reps${m.pin ? ' · pinned' : ''}`;
  for (const [name, svg] of Object.entries(charts(results.rows, note))) {
    fs.writeFileSync(path.join(out, name), svg);
  }
  process.stderr.write(
    `bench: wrote ${path.relative(ROOT, out)}/{${o.from ? '' : 'latest.json,'}throughput.svg,latency.svg}\n`,
  );
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let results: ResultsFile;
  try {
    results = o.from
      ? (JSON.parse(fs.readFileSync(o.from, 'utf8')) as ResultsFile)
      : await measure(o);
  } finally {
    snapshot?.remove();
  }
  output(results, o);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
