/**
 * Runs N failovers under live traffic, on a Sentinel group and on a Redis Cluster, and reports
 * what chanlayer did next to what Sentinel / the cluster did:
 *
 *   npx tsx scripts/failover-report.ts [--runs 5] [--topologies sentinel,cluster]
 *        [--layers core,pubsub] [--json PATH] [--command-timeout-ms 1000] [--down-after 1000]
 *        [--failover-timeout 3000] [--node-timeout 1000] [--interval-ms 5] [--senders 1]
 *
 * Sentinel: one native topology (master, replica, three sentinels on loopback,
 * test/harness/redis.ts). Cluster: 3 masters × 1 replica (test/harness/cluster.ts,
 * `cluster-node-timeout` = --node-timeout). One layer of each kind lives through every run of a
 * topology; only the probes are new per run. A run: traffic flows on each layer (`--senders`
 * channels, each with one sequential sender and one receiver, a message every `--interval-ms`;
 * 0 = back to back), the master holding the probes' keys is SIGKILLed, its replica is promoted,
 * traffic resumes, the probes account for every message; then the killed server comes back as a
 * replica for the next run. Sentinel: runs alternate between the two servers, and the next kill
 * waits until 2 × failover-timeout has passed since the last (Sentinel will not fail the same
 * master over again sooner). Cluster: each run's channels are named so that their keys (core)
 * or sharded channels (Pub/Sub) live on the next master in turn, which is the one killed. A
 * layer that refuses the topology (the Pub/Sub layer on a cluster, before it supports one) is
 * reported as skipped with its reason.
 *
 * Columns:
 * - promotion: kill → the first sentinel reports the new master (Sentinel's own time) / the
 *   replica's own CLUSTER NODES says it is master of the slots (polled every 25 ms);
 * - resume: kill → first message sent after the kill that was received (send + receive on the
 *   new master); diff = resume − promotion (acceptance: ≤ 2000 ms on Sentinel, issue 7;
 *   ≤ 500 ms on a cluster, issue 17);
 * - acked-lost: send() resolved but the message never arrived. Redis replicates asynchronously:
 *   a write the old master acknowledged just before dying can be missing on the replica. On
 *   Pub/Sub, also whatever was published while this process's subscription was not yet back.
 *   "accounted" checks each loss is of that kind (acked before the old master died / before the
 *   subscriptions were back);
 * - dup: received twice (acceptance: 0); errors: sends that rejected (with an error naming the
 *   shard, within the command timeout), of which "delivered" arrived anyway (outcome unknown at
 *   the time: the connection dropped with the command in flight).
 *
 * Prints a Markdown table per topology and the acceptance verdicts; writes everything as JSON,
 * one file per topology (default `.test-artifacts/failover-report.json` for Sentinel and
 * `…/failover-report-cluster.json` next to it for the cluster). Exit status 0 when every
 * acceptance criterion holds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import {
  RedisChannelLayer,
  RedisPubSubChannelLayer,
  type ChannelLayer,
  type HostEntry,
  type LayerOptions,
} from '../lib/index.ts';
import {
  clusterFailover,
  measureFailover,
  rejoin,
  TrafficProbe,
  type FailoverMeasurement,
  type FailoverTopology,
  type ProbeSummary,
} from '../test/failover-probe.ts';
import { slotOf, startCluster, type ClusterNode } from '../test/harness/cluster.ts';
import { startSentinelTopology } from '../test/harness/redis.ts';

const USAGE =
  'usage: npx tsx scripts/failover-report.ts [--runs N] [--topologies sentinel,cluster] ' +
  '[--layers core,pubsub] [--json PATH] [--command-timeout-ms MS] [--down-after MS] ' +
  '[--failover-timeout MS] [--node-timeout MS] [--interval-ms MS] [--senders N]';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    topologies: { type: 'string', default: 'sentinel,cluster' },
    layers: { type: 'string', default: 'core,pubsub' },
    json: { type: 'string', default: '.test-artifacts/failover-report.json' },
    'command-timeout-ms': { type: 'string', default: '1000' },
    'down-after': { type: 'string', default: '1000' },
    'failover-timeout': { type: 'string', default: '3000' },
    'node-timeout': { type: 'string', default: '1000' },
    'interval-ms': { type: 'string', default: '5' },
    senders: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${value}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

/** A comma-separated option whose every item is one of `allowed`. */
function list<T extends string>(name: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((k) => k.trim());
  for (const item of items) {
    if (!allowed.includes(item as T)) {
      console.error(`--${name} takes ${allowed.join(' and/or ')}, got ${item}\n${USAGE}`);
      process.exit(2);
    }
  }
  return items as T[];
}

const runs = positiveInt('runs', values.runs);
const commandTimeoutMs = positiveInt('command-timeout-ms', values['command-timeout-ms']);
const downAfterMs = positiveInt('down-after', values['down-after']);
const failoverTimeoutMs = positiveInt('failover-timeout', values['failover-timeout']);
const nodeTimeoutMs = positiveInt('node-timeout', values['node-timeout']);
const intervalMs = positiveInt('interval-ms', values['interval-ms']);
const senders = positiveInt('senders', values.senders);
const kinds = list('layers', values.layers, ['core', 'pubsub'] as const);
const topologies = list('topologies', values.topologies, ['sentinel', 'cluster'] as const);
if (runs === 0 || kinds.length === 0 || senders === 0) {
  console.error(USAGE);
  process.exit(2);
}

type Kind = 'core' | 'pubsub';
type TopologyName = 'sentinel' | 'cluster';

/** Acceptance: resume within this of the promotion (Sentinel: issue 7; Cluster: issue 17). */
const MAX_DIFF_MS: Record<TopologyName, number> = { sentinel: 2000, cluster: 500 };

interface Row {
  run: number;
  layer: Kind;
  from: number;
  to: number;
  promotionMs: number;
  resumeMs: number;
  diffMs: number;
  sent: number;
  acked: number;
  received: number;
  ackedLost: number;
  /** Every loss is of the expected kind (see the header). */
  lossesAccounted: boolean;
  /** Each lost message: when it was acked, relative to the kill (ms). */
  lostAckedAtMs: number[];
  duplicates: number;
  outOfOrder: number;
  errors: number;
  rejectedDelivered: number;
  receiveErrors: number;
  maxSendMs: number;
  errorMessages: Record<string, number>;
  disconnects: number;
  reconnects: number;
}

interface Subject {
  kind: Kind;
  layer: ChannelLayer & (RedisChannelLayer | RedisPubSubChannelLayer);
  /** Times of 'reconnect' events (Pub/Sub: subscriptions confirmed back). */
  reconnects: number[];
  disconnects: number[];
}

/** One topology under test: its layers' hosts entry, and how a run kills and recovers. */
interface Topology {
  name: TopologyName;
  hosts: HostEntry[];
  /** Redis settings of the topology, for the JSON. */
  settings: Record<string, number>;
  /** Run `run`'s probes on `subjects` and the master that holds their keys, to be killed. */
  prepare(
    run: number,
    subjects: Subject[],
  ): Promise<{ probes: TrafficProbe[]; topology: FailoverTopology }>;
  /** After a run that is not the last: the killed server back as a replica. */
  recover(m: FailoverMeasurement): Promise<void>;
  stop(): Promise<void>;
}

/** The layers' prefix: a core channel's key is PREFIX + channel (channels_redis). */
const PREFIX = 'asgi';

const log = (message: string): void => console.error(`[failover-report] ${message}`);

function redisVersion(): string {
  try {
    return execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** A layer of `kind` on `hosts`, or why the layer refuses them (ConfigurationError). */
function makeSubject(kind: Kind, hosts: HostEntry[]): Subject | string {
  const options: LayerOptions = {
    hosts,
    prefix: PREFIX,
    commandTimeoutMs,
    // Connection trouble during a failover is expected; the table reports it.
    logger: { warn: () => {} },
  };
  let layer: Subject['layer'];
  try {
    layer = kind === 'core' ? new RedisChannelLayer(options) : new RedisPubSubChannelLayer(options);
  } catch (err) {
    return (err as Error).message;
  }
  const subject: Subject = { kind, layer, reconnects: [], disconnects: [] };
  layer.on('reconnect', () => subject.reconnects.push(Date.now()));
  layer.on('disconnect', () => subject.disconnects.push(Date.now()));
  layer.on('error', () => {});
  return subject;
}

/**
 * `senders` probes per layer, each a sequential sender + receiver on its own channel, named by
 * `channelFor` (core) or made by `newChannel` (Pub/Sub: a process-local name) and accepted by
 * `accept` (a cluster run wants every channel on the master it will kill).
 */
async function probesFor(
  subject: Subject,
  run: number,
  accept: (redisName: string) => Promise<boolean> = async () => true,
): Promise<TrafficProbe[]> {
  const { layer } = subject;
  const channelFor = async (i: number): Promise<string> => {
    for (let k = 0; k < 10_000; k++) {
      if (layer instanceof RedisPubSubChannelLayer) {
        const channel = await layer.newChannel('report.');
        if (await accept(channel)) return channel;
        await layer.deleteChannel(channel);
      } else {
        const channel = `report.core.${run}.${i}${k === 0 ? '' : `.${k}`}`;
        if (await accept(`${PREFIX}${channel}`)) return channel;
      }
    }
    throw new Error(`no ${subject.kind} channel name accepted for run ${run}`);
  };
  const probes: TrafficProbe[] = [];
  for (let i = 0; i < senders; i++) {
    const tag = `${subject.kind}-${run}-${i}`;
    probes.push(new TrafficProbe(layer, await channelFor(i), { tag, intervalMs }));
  }
  return probes;
}

async function sentinelTopology(): Promise<Topology> {
  log(
    `starting a Sentinel topology (down-after ${downAfterMs} ms, failover-timeout ${failoverTimeoutMs} ms)`,
  );
  const topo = await startSentinelTopology({
    masterName: 'report',
    downAfterMs,
    failoverTimeoutMs,
  });
  let lastKill = Number.NEGATIVE_INFINITY;
  return {
    name: 'sentinel',
    hosts: [{ sentinels: topo.sentinels, masterName: topo.masterName }],
    settings: { downAfterMs, failoverTimeoutMs },
    async prepare(run, subjects) {
      const probes = (await Promise.all(subjects.map((s) => probesFor(s, run)))).flat();
      // Sentinel does not start another failover of a master within 2 × failover-timeout of
      // the previous one; a kill before that measures that rule, not a failover.
      const wait = lastKill + 2 * failoverTimeoutMs + 500 - Date.now();
      if (wait > 0) {
        log(`run ${run}: ${wait} ms until Sentinel may fail over again (2 × failover-timeout)`);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const topology: FailoverTopology = {
        killMaster: async () => {
          const killed = await topo.killMaster();
          lastKill = killed.killedAt;
          return killed;
        },
        waitForNewMaster: (port, timeoutMs) => topo.waitForNewMaster(port, timeoutMs),
      };
      return { probes, topology };
    },
    recover: (m) => rejoin(topo, m.oldPort),
    stop: () => topo.stop(),
  };
}

async function clusterTopology(): Promise<Topology> {
  log(`starting a Redis Cluster, 3 masters × 1 replica (cluster-node-timeout ${nodeTimeoutMs} ms)`);
  const cluster = await startCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs });
  let victim: ClusterNode | undefined;
  return {
    name: 'cluster',
    hosts: [{ cluster: cluster.startupNodes() }],
    settings: { nodeTimeoutMs, masters: 3, replicasPerMaster: 1 },
    async prepare(run, subjects) {
      // Each run kills the next master in turn (the restarted one is a replica by then).
      const masters = (await cluster.masters()).sort((a, b) => a.port - b.port);
      const target = masters[(run - 1) % masters.length]!;
      victim = target;
      const onVictim = async (name: string): Promise<boolean> =>
        (await cluster.ownerOf(slotOf(name))).id === target.id;
      const probes: TrafficProbe[] = [];
      for (const s of subjects) probes.push(...(await probesFor(s, run, onVictim)));
      return { probes, topology: clusterFailover(cluster, target) };
    },
    async recover() {
      if (victim) await cluster.restart(victim);
    },
    stop: () => cluster.stop(),
  };
}

/** One row per layer per run, over that layer's probes (resume: the last of them to resume). */
function rowOf(run: number, subject: Subject, m: FailoverMeasurement): Row {
  const mine = m.probes.filter((p) => p.probe.layer === subject.layer);
  const resumedAt = Math.max(...mine.map((p) => p.resumedAt));
  const sum = (f: (s: ProbeSummary) => number): number =>
    mine.reduce((n, p) => n + f(p.summary), 0);
  // Core: a loss must have been acked before the old master died (async replication, or a pop
  // whose reply died with it). Pub/Sub: acked before this process's subscriptions were back.
  let limit = m.deadAt;
  if (subject.kind === 'pubsub') {
    const back = subject.reconnects.filter((t) => t >= m.killedAt);
    limit = (back.at(-1) ?? m.deadAt) + 100;
  }
  const lostAckedAt = mine.flatMap(({ probe, summary }) =>
    summary.lost.map((seq) => probe.sends[seq]!.settledAt),
  );
  const errorMessages: Record<string, number> = {};
  for (const { summary } of mine) {
    for (const [message, n] of Object.entries(summary.errors)) {
      errorMessages[message] = (errorMessages[message] ?? 0) + n;
    }
  }
  return {
    run,
    layer: subject.kind,
    from: m.oldPort,
    to: m.newPort,
    promotionMs: m.promotedAt - m.killedAt,
    resumeMs: resumedAt - m.killedAt,
    diffMs: resumedAt - m.promotedAt,
    sent: sum((s) => s.sent),
    acked: sum((s) => s.acked),
    received: sum((s) => s.received),
    ackedLost: lostAckedAt.length,
    lossesAccounted: lostAckedAt.every((t) => t <= limit),
    lostAckedAtMs: lostAckedAt.map((t) => t - m.killedAt),
    duplicates: sum((s) => s.duplicates.length),
    outOfOrder: sum((s) => s.outOfOrder),
    errors: sum((s) => s.rejected),
    rejectedDelivered: sum((s) => s.rejectedDelivered.length),
    receiveErrors: sum((s) => s.receiveErrors),
    maxSendMs: Math.max(...mine.map((p) => p.summary.maxSendMs)),
    errorMessages,
    disconnects: subject.disconnects.filter((t) => t >= m.killedAt).length,
    reconnects: subject.reconnects.filter((t) => t >= m.killedAt).length,
  };
}

function table(rows: Row[]): string {
  const head = [
    'run',
    'layer',
    'master',
    'promotion ms',
    'resume ms',
    'diff ms',
    'acked',
    'acked-lost',
    'accounted',
    'dup',
    'errors (delivered)',
    'max send ms',
  ];
  const lines = [
    `| ${head.join(' | ')} |`,
    `| ${head.map((h, i) => (i < 3 || h === 'accounted' ? '---' : '---:')).join(' | ')} |`,
  ];
  for (const r of rows) {
    lines.push(
      `| ${[
        r.run,
        r.layer,
        `:${r.from} → :${r.to}`,
        r.promotionMs,
        r.resumeMs,
        r.diffMs,
        r.acked,
        r.ackedLost,
        r.lossesAccounted ? 'yes' : '**no**',
        r.duplicates,
        `${r.errors} (${r.rejectedDelivered})`,
        r.maxSendMs,
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

function stats(values: number[]): { min: number; median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
  return { min: sorted[0]!, median, max: sorted.at(-1)! };
}

interface Section {
  environment: Record<string, unknown>;
  acceptance: Record<string, boolean>;
  summary: Record<string, unknown>;
  /** Layers the topology was not measured with, and why. */
  skipped: Record<string, string>;
  rows: Row[];
}

/** Every run on one topology; a failed run ends the section with the rows measured so far. */
async function measureTopology(start: () => Promise<Topology>): Promise<Section> {
  const started = new Date();
  const topo = await start();
  const subjects: Subject[] = [];
  const skipped: Record<string, string> = {};
  const rows: Row[] = [];
  let failure: unknown;
  try {
    for (const kind of kinds) {
      const subject = makeSubject(kind, topo.hosts);
      if (typeof subject === 'string') {
        skipped[kind] = subject;
        log(`${topo.name}: skipping ${kind}: ${subject}`);
      } else subjects.push(subject);
    }
    for (let run = 1; run <= runs && subjects.length > 0; run++) {
      const { probes, topology } = await topo.prepare(run, subjects);
      log(`${topo.name} run ${run}/${runs}: killing the master under traffic`);
      let m: FailoverMeasurement;
      try {
        m = await measureFailover({ topology, probes });
      } finally {
        await Promise.all(probes.map((p) => p.stop()));
        // Each run's Pub/Sub channel is unsubscribed once it has served.
        for (const { layer, channel } of probes) {
          if (layer instanceof RedisPubSubChannelLayer) {
            await layer.deleteChannel(channel).catch(() => {});
          }
        }
      }
      const runRows = subjects.map((subject) => rowOf(run, subject, m));
      rows.push(...runRows);
      for (const r of runRows) {
        log(
          `${topo.name} run ${run} ${r.layer}: promotion ${r.promotionMs} ms, resume ${r.resumeMs} ms (diff ${r.diffMs} ms), acked-lost ${r.ackedLost}, dup ${r.duplicates}, errors ${r.errors}`,
        );
      }
      if (run < runs) {
        log(`${topo.name} run ${run}: bringing :${m.oldPort} back as a replica`);
        await topo.recover(m);
      }
    }
  } catch (err) {
    failure = err;
  } finally {
    await Promise.all(subjects.map((s) => s.layer.close()));
    await topo.stop();
  }
  if (rows.length === 0 && failure !== undefined) throw failure;

  const summary = Object.fromEntries(
    subjects.map(({ kind }) => {
      const mine = rows.filter((r) => r.layer === kind);
      return [
        kind,
        {
          runs: mine.length,
          promotionMs: stats(mine.map((r) => r.promotionMs)),
          resumeMs: stats(mine.map((r) => r.resumeMs)),
          diffMs: stats(mine.map((r) => r.diffMs)),
          ackedLost: mine.reduce((n, r) => n + r.ackedLost, 0),
          duplicates: mine.reduce((n, r) => n + r.duplicates, 0),
          errors: mine.reduce((n, r) => n + r.errors, 0),
        },
      ];
    }),
  );
  const maxDiff = MAX_DIFF_MS[topo.name];
  const acceptance = {
    zeroDuplicates: rows.every((r) => r.duplicates === 0),
    resumeWithinMaxDiff: rows.every((r) => r.diffMs <= maxDiff),
    everyLossAccounted: rows.every((r) => r.lossesAccounted),
    allRunsCompleted: failure === undefined,
  };
  const environment = {
    date: started.toISOString(),
    topology: topo.name,
    node: process.version,
    redis: redisVersion(),
    cpus: os.cpus().length,
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    commandTimeoutMs,
    maxDiffMs: maxDiff,
    ...topo.settings,
    intervalMs,
    sendersPerLayer: senders,
  };

  console.log(`## ${topo.name === 'sentinel' ? 'Sentinel' : 'Redis Cluster'}\n`);
  console.log(table(rows));
  console.log('');
  for (const [kind, s] of Object.entries(summary) as [Kind, (typeof summary)[string]][]) {
    console.log(
      `${kind}: promotion median ${s.promotionMs.median} ms, resume median ${s.resumeMs.median} ms (max ${s.resumeMs.max}), diff median ${s.diffMs.median} ms (max ${s.diffMs.max}); acked-lost ${s.ackedLost}, duplicates ${s.duplicates}, errors ${s.errors}`,
    );
  }
  for (const [kind, why] of Object.entries(skipped)) console.log(`${kind}: skipped (${why})`);
  console.log('');
  const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  console.log(`0 duplicates: ${mark(acceptance.zeroDuplicates)}`);
  console.log(
    `resume within ${maxDiff} ms of the promotion: ${mark(acceptance.resumeWithinMaxDiff)}`,
  );
  console.log(`every lost message accounted for: ${mark(acceptance.everyLossAccounted)}`);
  if (failure)
    console.log(
      `run ${(rows.at(-1)?.run ?? 0) + 1} failed: ${String((failure as Error)?.stack ?? failure)}`,
    );
  console.log('');
  return { environment, acceptance, summary, skipped, rows };
}

/** The JSON file of a topology: `--json` for Sentinel, `-cluster` before its extension. */
function jsonPath(name: TopologyName): string {
  if (name === 'sentinel') return values.json;
  const { dir, name: base, ext } = path.parse(values.json);
  return path.join(dir, `${base}-${name}${ext || '.json'}`);
}

async function main(): Promise<number> {
  const starts: Record<TopologyName, () => Promise<Topology>> = {
    sentinel: sentinelTopology,
    cluster: clusterTopology,
  };
  let ok = true;
  for (const name of topologies) {
    const section = await measureTopology(starts[name]);
    const file = jsonPath(name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify(section, null, 2)}\n`);
    log(`wrote ${file}`);
    ok &&= Object.values(section.acceptance).every(Boolean);
  }
  return ok ? 0 : 1;
}

process.exitCode = await main();
