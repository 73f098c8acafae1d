/**
 * Runs N Sentinel failovers under live traffic and reports what chanlayer did, next to what
 * Sentinel did:
 *
 *   npx tsx scripts/failover-report.ts [--runs 5] [--layers core,pubsub] [--json PATH]
 *        [--command-timeout-ms 1000] [--down-after 1000] [--failover-timeout 3000] [--interval-ms 5]
 *        [--senders 1]
 *
 * One native topology (master, replica, three sentinels on loopback, test/harness/redis.ts) and
 * one layer of each kind live through every run; only the probes are new per run. A run: traffic
 * flows on each layer (`--senders` channels, each with one sequential sender and one receiver,
 * a message every `--interval-ms`; 0 = back to back), the current master is SIGKILLed, Sentinel
 * promotes the replica, traffic resumes, the probes account for every message; then the killed
 * server comes back as a replica for the next run (so runs alternate between the two servers),
 * and the next kill waits until 2 × failover-timeout has passed since the last (Sentinel will
 * not fail the same master over again sooner).
 *
 * Columns:
 * - promotion: kill → the first sentinel reports the new master (Sentinel's own time);
 * - resume: kill → first message sent after the kill that was received (send + receive on the
 *   new master); diff = resume − promotion (acceptance: ≤ 2000 ms);
 * - acked-lost: send() resolved but the message never arrived. Redis replicates asynchronously:
 *   a write the old master acknowledged just before dying can be missing on the replica. On
 *   Pub/Sub, also whatever was published while this process's subscription was not yet back.
 *   "accounted" checks each loss is of that kind (acked before the old master died / before the
 *   subscriptions were back);
 * - dup: received twice (acceptance: 0); errors: sends that rejected (with an error naming the
 *   shard, within the command timeout), of which "delivered" arrived anyway (outcome unknown at
 *   the time: the connection dropped with the command in flight).
 *
 * Prints a Markdown table and the acceptance verdict; writes everything as JSON (default
 * `.test-artifacts/failover-report.json`). Exit status 0 when every acceptance criterion holds.
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
  type LayerOptions,
} from '../lib/index.ts';
import {
  measureFailover,
  rejoin,
  TrafficProbe,
  type FailoverMeasurement,
  type ProbeSummary,
} from '../test/failover-probe.ts';
import { startSentinelTopology, type SentinelTopology } from '../test/harness/redis.ts';

const USAGE =
  'usage: npx tsx scripts/failover-report.ts [--runs N] [--layers core,pubsub] [--json PATH] ' +
  '[--command-timeout-ms MS] [--down-after MS] [--failover-timeout MS] [--interval-ms MS] [--senders N]';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    layers: { type: 'string', default: 'core,pubsub' },
    json: { type: 'string', default: '.test-artifacts/failover-report.json' },
    'command-timeout-ms': { type: 'string', default: '1000' },
    'down-after': { type: 'string', default: '1000' },
    'failover-timeout': { type: 'string', default: '3000' },
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

const runs = positiveInt('runs', values.runs);
const commandTimeoutMs = positiveInt('command-timeout-ms', values['command-timeout-ms']);
const downAfterMs = positiveInt('down-after', values['down-after']);
const failoverTimeoutMs = positiveInt('failover-timeout', values['failover-timeout']);
const intervalMs = positiveInt('interval-ms', values['interval-ms']);
const senders = positiveInt('senders', values.senders);
const kinds = values.layers.split(',').map((k) => k.trim());
for (const kind of kinds) {
  if (kind !== 'core' && kind !== 'pubsub') {
    console.error(`--layers takes core and/or pubsub, got ${kind}\n${USAGE}`);
    process.exit(2);
  }
}
if (runs === 0 || kinds.length === 0 || senders === 0) {
  console.error(USAGE);
  process.exit(2);
}

/** Acceptance (issue 7): resume within this of Sentinel's promotion. */
const MAX_DIFF_MS = 2000;

interface Row {
  run: number;
  layer: 'core' | 'pubsub';
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
  kind: 'core' | 'pubsub';
  layer: ChannelLayer & (RedisChannelLayer | RedisPubSubChannelLayer);
  /** Times of 'reconnect' events (Pub/Sub: subscriptions confirmed back). */
  reconnects: number[];
  disconnects: number[];
}

const log = (message: string): void => console.error(`[failover-report] ${message}`);

function redisVersion(): string {
  try {
    return execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function makeSubject(kind: 'core' | 'pubsub', topo: SentinelTopology): Subject {
  const options: LayerOptions = {
    hosts: [{ sentinels: topo.sentinels, masterName: topo.masterName }],
    commandTimeoutMs,
    // Connection trouble during a failover is expected; the table reports it.
    logger: { warn: () => {} },
  };
  const layer =
    kind === 'core' ? new RedisChannelLayer(options) : new RedisPubSubChannelLayer(options);
  const subject: Subject = { kind, layer, reconnects: [], disconnects: [] };
  layer.on('reconnect', () => subject.reconnects.push(Date.now()));
  layer.on('disconnect', () => subject.disconnects.push(Date.now()));
  layer.on('error', () => {});
  return subject;
}

/** `senders` probes per layer, each a sequential sender + receiver on its own channel. */
async function probesFor(subject: Subject, run: number): Promise<TrafficProbe[]> {
  return Promise.all(
    Array.from({ length: senders }, async (_, i) => {
      const channel =
        subject.layer instanceof RedisPubSubChannelLayer
          ? await subject.layer.newChannel('report.')
          : `report.core.${run}.${i}`;
      const tag = `${subject.kind}-${run}-${i}`;
      return new TrafficProbe(subject.layer, channel, { tag, intervalMs });
    }),
  );
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

async function main(): Promise<number> {
  const started = new Date();
  log(
    `starting a Sentinel topology (down-after ${downAfterMs} ms, failover-timeout ${failoverTimeoutMs} ms)`,
  );
  const topo = await startSentinelTopology({
    masterName: 'report',
    downAfterMs,
    failoverTimeoutMs,
  });
  const subjects: Subject[] = [];
  const rows: Row[] = [];
  let failure: unknown;
  try {
    for (const kind of kinds as Array<'core' | 'pubsub'>) subjects.push(makeSubject(kind, topo));
    let lastKill = Number.NEGATIVE_INFINITY;
    for (let run = 1; run <= runs; run++) {
      const probes = (await Promise.all(subjects.map((s) => probesFor(s, run)))).flat();
      // Sentinel does not start another failover of a master within 2 × failover-timeout of
      // the previous one; a kill before that measures that rule, not a failover.
      const wait = lastKill + 2 * failoverTimeoutMs + 500 - Date.now();
      if (wait > 0) {
        log(`run ${run}: ${wait} ms until Sentinel may fail over again (2 × failover-timeout)`);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
      log(`run ${run}/${runs}: killing the master under traffic`);
      let m: FailoverMeasurement;
      try {
        m = await measureFailover({ topology: topo, probes });
        lastKill = m.killedAt;
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
          `run ${run} ${r.layer}: promotion ${r.promotionMs} ms, resume ${r.resumeMs} ms (diff ${r.diffMs} ms), acked-lost ${r.ackedLost}, dup ${r.duplicates}, errors ${r.errors}`,
        );
      }
      if (run < runs) {
        log(`run ${run}: bringing :${m.oldPort} back as a replica`);
        await rejoin(topo, m.oldPort);
      }
    }
  } catch (err) {
    failure = err;
  } finally {
    await Promise.all(subjects.map((s) => s.layer.close()));
    await topo.stop();
  }
  if (rows.length === 0) throw failure;

  const summary = Object.fromEntries(
    (kinds as Array<'core' | 'pubsub'>).map((kind) => {
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
  const acceptance = {
    zeroDuplicates: rows.every((r) => r.duplicates === 0),
    resumeWithin2sOfPromotion: rows.every((r) => r.diffMs <= MAX_DIFF_MS),
    everyLossAccounted: rows.every((r) => r.lossesAccounted),
    allRunsCompleted: failure === undefined,
  };
  const environment = {
    date: started.toISOString(),
    node: process.version,
    redis: redisVersion(),
    cpus: os.cpus().length,
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    commandTimeoutMs,
    downAfterMs,
    failoverTimeoutMs,
    intervalMs,
    sendersPerLayer: senders,
  };

  console.log(table(rows));
  console.log('');
  for (const [kind, s] of Object.entries(summary)) {
    console.log(
      `${kind}: promotion median ${s.promotionMs.median} ms, resume median ${s.resumeMs.median} ms (max ${s.resumeMs.max}), diff median ${s.diffMs.median} ms (max ${s.diffMs.max}); acked-lost ${s.ackedLost}, duplicates ${s.duplicates}, errors ${s.errors}`,
    );
  }
  console.log('');
  const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
  console.log(`0 duplicates: ${mark(acceptance.zeroDuplicates)}`);
  console.log(
    `resume within ${MAX_DIFF_MS} ms of Sentinel's promotion: ${mark(acceptance.resumeWithin2sOfPromotion)}`,
  );
  console.log(`every lost message accounted for: ${mark(acceptance.everyLossAccounted)}`);
  if (failure)
    console.log(
      `run ${rows.at(-1)!.run + 1} failed: ${String((failure as Error)?.stack ?? failure)}`,
    );

  mkdirSync(path.dirname(values.json), { recursive: true });
  writeFileSync(
    values.json,
    `${JSON.stringify({ environment, acceptance, summary, rows }, null, 2)}\n`,
  );
  log(`wrote ${values.json}`);
  return Object.values(acceptance).every(Boolean) ? 0 : 1;
}

process.exitCode = await main();
