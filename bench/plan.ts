/**
 * What a bench run measures: the client runs (implementation × scenario × hosts) and the
 * table rows built from them, with the issue-9 targets each row is judged against.
 */
import { BARE_SCENARIOS } from './bare/index.ts';
import type { CeilingId } from './redis-benchmark.ts';
import type { ScenarioId } from './types.ts';

export type Impl = 'chanlayer' | 'channels_redis' | 'bare' | 'redis-benchmark';

/** Where a run's Redis is: 1 or 3 standalone servers, or a 3-master Redis Cluster. */
export type Topology = 1 | 3 | 'cluster';

export interface RunSpec {
  /** `impl/scenario/Nh` (or `impl/scenario/cluster`): the key results are stored under. */
  key: string;
  impl: Impl;
  id: ScenarioId | CeilingId;
  hosts: Topology;
}

export const runKey = (impl: Impl, id: string, hosts: Topology): string =>
  `${impl}/${id}/${hosts === 'cluster' ? hosts : `${hosts}h`}`;

/** Where a table cell's figure comes from: one metric of one run. */
export interface Source {
  run: string;
  metric: string;
}

/** A ratio target: chanlayer (1 host) ÷ the other column, as the issue states them. */
export interface Target {
  vs: 'channels_redis' | 'ceiling' | 'absolute';
  op: '>=' | '<=';
  value: number;
}

export interface RowDef {
  id: string;
  label: string;
  /** Label in the SVG charts, where space is short. */
  short: string;
  unit: 'msg/s' | 'ms' | 'MB';
  /** Which way is better; decides the 3-hosts check and the chart. */
  better: 'higher' | 'lower';
  chanlayer1?: Source;
  chanlayer3?: Source;
  /** chanlayer on the 3-master Redis Cluster: judged against `chanlayer3` (CLUSTER_TARGET). */
  cluster?: Source;
  channelsRedis?: Source;
  /** The bare Node client (bench/bare/): the floor of the row on this machine. */
  bare?: Source;
  ceiling?: Source & { label: string };
  targets: Target[];
  chart?: 'throughput' | 'latency';
}

/** 3 hosts must be "no worse than 1 host": allowed slack for a noisy shared machine. */
export const THREE_HOST_TOLERANCE = 0.1;

/**
 * Issue 17: a 3-master cluster does at least 0.8× what 3 standalone hosts do on this 2-core
 * machine (for a latency row: at most 1 / 0.8 of their time).
 */
export const CLUSTER_TARGET = 0.8;

/** The scenarios every implementation runs, on 1 host (chanlayer also on 3 hosts). */
const SHARED: readonly ScenarioId[] = [
  'core-seq',
  'core-inflight',
  'core-local',
  'core-pingpong',
  'core-group',
  'pubsub-inflight',
  'pubsub-pingpong',
];

/** The scenarios that also run on the cluster, next to their 3-host run (issue 17). */
export const ON_CLUSTER: readonly ScenarioId[] = [
  ...SHARED,
  'core-group-big',
  'core-newkey',
  'core-group-slots',
  'core-group-big-slots',
];

const cl = (id: ScenarioId, metric: string, hosts: Topology = 1): Source => ({
  run: runKey('chanlayer', id, hosts),
  metric,
});
const cr = (id: ScenarioId, metric: string): Source => ({
  run: runKey('channels_redis', id, 1),
  metric,
});
const rb = (id: CeilingId, metric: string, label: string): Source & { label: string } => ({
  run: runKey('redis-benchmark', id, 1),
  metric,
  label,
});

/** Both chanlayer columns and channels_redis for one scenario metric. */
const trio = (id: ScenarioId, metric: string, python = true) => ({
  chanlayer1: cl(id, metric, 1),
  chanlayer3: cl(id, metric, 3),
  ...(ON_CLUSTER.includes(id) ? { cluster: cl(id, metric, 'cluster') } : {}),
  ...(python ? { channelsRedis: cr(id, metric) } : {}),
});

/** A `*-slots` groupSend row: 3 hosts against the cluster only. */
const slots = (
  id: 'core-group-slots' | 'core-group-big-slots',
  metric: 'p50' | 'p99' | 'membersPerSec',
): RowDef => {
  const size = id === 'core-group-slots' ? '1,000' : '100,000';
  const what = metric === 'membersPerSec' ? 'members delivered per second (at the p50)' : metric;
  return {
    id: `${id}-${metric === 'membersPerSec' ? 'rate' : metric}`,
    label: `groupSend to ${size} members on 16 slots until all received, ${what}`,
    short: `groupSend ${size} on 16 slots ${metric === 'membersPerSec' ? 'members/s' : metric}`,
    unit: metric === 'membersPerSec' ? 'msg/s' : 'ms',
    better: metric === 'membersPerSec' ? 'higher' : 'lower',
    chanlayer3: cl(id, metric, 3),
    cluster: cl(id, metric, 'cluster'),
    targets: [],
  };
};

/** A ping-pong round-trip latency row at one percentile, against Redis's own PING. */
const pingpong = (
  id: 'core-pingpong' | 'pubsub-pingpong',
  layer: string,
  p: 'p50' | 'p99',
  targets: Target[],
): RowDef => ({
  id: `${id}-${p}`,
  label: `${layer} ping-pong round trip ${p}`,
  short: `${layer} ping-pong ${p}`,
  unit: 'ms',
  better: 'lower',
  ...trio(id, p),
  ...(id === 'pubsub-pingpong' ? { bare: { run: runKey('bare', id, 1), metric: p } } : {}),
  ceiling: rb('ping', p, `PING ${p}, 1 client`),
  targets,
  chart: 'latency',
});

/** The ping-pongs with a layer per side, run after every other scenario. */
export const APART: readonly ScenarioId[] = [
  'core-pingpong-2proc',
  'core-pingpong-2layer',
  'pubsub-pingpong-2proc',
  'pubsub-pingpong-2layer',
];

/**
 * A ping-pong row whose two sides have a layer each: in two processes (`2proc`) or
 * two layers in one process (`2layer`). 1 host, against channels_redis in the same shape.
 */
const apart = (
  id: `${'core' | 'pubsub'}-pingpong-${'2proc' | '2layer'}`,
  p: 'p50' | 'p99',
  target: number,
): RowDef => {
  const layer = id.startsWith('core') ? 'core' : 'Pub/Sub';
  const shape = id.endsWith('2proc') ? 'across 2 processes' : '2 layers in 1 process';
  return {
    id: `${id}-${p}`,
    label: `${layer} ping-pong round trip ${p}, ${shape}`,
    short: `${layer} ping-pong ${p}, ${id.endsWith('2proc') ? '2 processes' : '2 layers'}`,
    unit: 'ms',
    better: 'lower',
    chanlayer1: cl(id, p),
    channelsRedis: cr(id, p),
    ...(BARE_SCENARIOS.includes(id) ? { bare: { run: runKey('bare', id, 1), metric: p } } : {}),
    ceiling: rb('ping', p, `PING ${p}, 1 client`),
    targets: [{ vs: 'channels_redis', op: '<=', value: target }],
    chart: 'latency',
  };
};

/**
 * A receive on a key the reader is not reading yet, until the message sent to it arrives: the
 * wake of a reader in a block. Reference: the same on a key whose receive is already waiting,
 * same run. Held to the promise of an absolute 50 ms p99.
 */
const newKey = (p: 'p50' | 'p99'): RowDef => ({
  id: `core-newkey-${p}`,
  label: `core send→receive on a key the reader is not reading yet, ${p}`,
  short: `core new-key receive ${p}`,
  unit: 'ms',
  better: 'lower',
  chanlayer1: cl('core-newkey', p, 1),
  chanlayer3: cl('core-newkey', p, 3),
  cluster: cl('core-newkey', p, 'cluster'),
  ceiling: {
    ...cl('core-newkey', p === 'p50' ? 'knownP50' : 'knownP99', 1),
    label: `same, key already read, ${p}`,
  },
  targets: p === 'p99' ? [{ vs: 'absolute', op: '<=', value: 50 }] : [],
  chart: 'latency',
});

/** A heap-size row: chanlayer on 1 host only, held to the issue's absolute 50 MB. */
const memory = (id: 'core-memory' | 'pubsub-memory', label: string, short: string): RowDef => ({
  id,
  label,
  short,
  unit: 'MB',
  better: 'lower',
  chanlayer1: cl(id, 'heapMB'),
  targets: [{ vs: 'absolute', op: '<=', value: 50 }],
});

export const ROWS: RowDef[] = [
  {
    id: 'core-seq',
    label: 'core send→receive, 1 sender awaiting each send',
    short: 'core, sequential sends',
    unit: 'msg/s',
    better: 'higher',
    ...trio('core-seq', 'throughput'),
    ceiling: rb('evalsha-1', 'throughput', 'EVALSHA send script, 1 client'),
    targets: [
      { vs: 'channels_redis', op: '>=', value: 4 },
      { vs: 'ceiling', op: '>=', value: 0.7 },
    ],
    chart: 'throughput',
  },
  {
    id: 'core-inflight',
    label: 'core send→receive, 64 sends in flight',
    short: 'core, 64 in flight',
    unit: 'msg/s',
    better: 'higher',
    ...trio('core-inflight', 'throughput'),
    ceiling: rb('evalsha-50x16', 'throughput', 'EVALSHA send script, 50 clients × 16 pipelined'),
    targets: [
      { vs: 'channels_redis', op: '>=', value: 25 },
      { vs: 'ceiling', op: '>=', value: 0.5 },
    ],
    chart: 'throughput',
  },
  {
    id: 'core-local',
    label: 'core send→receive, process-local channel',
    short: 'core, process-local channel',
    unit: 'msg/s',
    better: 'higher',
    ...trio('core-local', 'throughput'),
    targets: [],
    chart: 'throughput',
  },
  pingpong('core-pingpong', 'core', 'p50', [{ vs: 'channels_redis', op: '<=', value: 0.25 }]),
  pingpong('core-pingpong', 'core', 'p99', [{ vs: 'channels_redis', op: '<=', value: 0.4 }]),
  {
    id: 'core-group',
    label: 'groupSend to 1,000 members until all received, p50',
    short: 'groupSend 1,000 members p50',
    unit: 'ms',
    better: 'lower',
    ...trio('core-group', 'p50'),
    targets: [{ vs: 'channels_redis', op: '<=', value: 0.15 }],
    chart: 'latency',
  },
  {
    id: 'core-group-big',
    label: 'groupSend to 100,000 members on 3 shards until all received',
    short: 'groupSend 100,000 members',
    unit: 'ms',
    better: 'lower',
    chanlayer3: cl('core-group-big', 'time', 3),
    cluster: cl('core-group-big', 'time', 'cluster'),
    targets: [],
  },
  {
    id: 'core-group-big-add',
    label: 'groupAdd of those 100,000 members (1,000 in flight)',
    short: 'groupAdd 100,000 members',
    unit: 'ms',
    better: 'lower',
    chanlayer3: cl('core-group-big', 'groupAddAll', 3),
    cluster: cl('core-group-big', 'groupAddAll', 'cluster'),
    targets: [],
  },
  {
    id: 'pubsub-inflight',
    label: 'Pub/Sub send→receive, 64 in flight',
    short: 'Pub/Sub, 64 in flight',
    unit: 'msg/s',
    better: 'higher',
    ...trio('pubsub-inflight', 'throughput'),
    ceiling: rb('publish-50x16', 'throughput', 'PUBLISH, 1 subscriber, 50 clients × 16 pipelined'),
    targets: [{ vs: 'channels_redis', op: '>=', value: 10 }],
    chart: 'throughput',
  },
  pingpong('pubsub-pingpong', 'Pub/Sub', 'p50', [{ vs: 'channels_redis', op: '<=', value: 0.5 }]),
  pingpong('pubsub-pingpong', 'Pub/Sub', 'p99', []),
  memory(
    'core-memory',
    'heap of 100,000 idle process-local channels, core (receive pending)',
    'core, 100k idle channels',
  ),
  memory(
    'pubsub-memory',
    'heap of 100,000 idle channels, Pub/Sub (subscribed, receive pending)',
    'Pub/Sub, 100k idle channels',
  ),
  // Issue 14: after every older row, so none of those moves.
  apart('core-pingpong-2proc', 'p50', 0.35),
  apart('core-pingpong-2proc', 'p99', 0.5),
  apart('core-pingpong-2layer', 'p50', 0.35),
  apart('core-pingpong-2layer', 'p99', 0.5),
  apart('pubsub-pingpong-2proc', 'p50', 0.7),
  apart('pubsub-pingpong-2proc', 'p99', 0.7),
  apart('pubsub-pingpong-2layer', 'p50', 0.7),
  apart('pubsub-pingpong-2layer', 'p99', 0.7),
  newKey('p50'),
  newKey('p99'),
  // Issue 17: groupSend over many slots, 3 hosts against the cluster.
  slots('core-group-slots', 'p50'),
  slots('core-group-slots', 'p99'),
  slots('core-group-slots', 'membersPerSec'),
  slots('core-group-big-slots', 'p50'),
  slots('core-group-big-slots', 'p99'),
  slots('core-group-big-slots', 'membersPerSec'),
];

/** Client runs per repetition, in the order they run (ceilings first: short, and a sanity
 * check of the servers). Scenario-major, so each scenario's implementations run back to back
 * under the same background load. */
export function planRuns(o: {
  /** Which chanlayer layers to run: 'core' and/or 'pubsub' (those lib/index.ts exports). */
  chanlayer: readonly ('core' | 'pubsub')[];
  python: boolean;
  bare: boolean;
  ceilings: boolean;
  /** False for the in-memory self-test: separate in-memory layers share no group state. */
  bigGroup?: boolean;
  /** False for the in-memory self-test: in-memory layers share nothing across instances. */
  apart?: boolean;
  /** Which chanlayer layers also run on the cluster (ON_CLUSTER scenarios, after their 3h run). */
  cluster?: readonly ('core' | 'pubsub')[];
  only?: (id: string) => boolean;
}): RunSpec[] {
  const want = o.only ?? (() => true);
  const runs: RunSpec[] = [];
  const add = (impl: Impl, id: RunSpec['id'], hosts: Topology): void => {
    if (want(id)) runs.push({ key: runKey(impl, id, hosts), impl, id, hosts });
  };
  if (o.ceilings) {
    for (const id of ['evalsha-1', 'evalsha-50x16', 'ping', 'publish-50x16'] as const) {
      add('redis-benchmark', id, 1);
    }
  }
  const kind = (id: ScenarioId): 'core' | 'pubsub' =>
    id.startsWith('pubsub-') ? 'pubsub' : 'core';
  const chanlayer = (id: ScenarioId): boolean => o.chanlayer.includes(kind(id));
  // Back to back with the 3-host run, so the ratio compares runs under the same load.
  const onCluster = (id: ScenarioId): void => {
    if (chanlayer(id) && ON_CLUSTER.includes(id) && o.cluster?.includes(kind(id))) {
      add('chanlayer', id, 'cluster');
    }
  };
  for (const id of SHARED) {
    if (chanlayer(id)) add('chanlayer', id, 1);
    if (chanlayer(id)) add('chanlayer', id, 3);
    onCluster(id);
    if (o.python) add('channels_redis', id, 1);
    if (o.bare && BARE_SCENARIOS.includes(id)) add('bare', id, 1);
  }
  if (chanlayer('core-group-big') && o.bigGroup !== false) {
    add('chanlayer', 'core-group-big', 3);
    onCluster('core-group-big');
  }
  if (chanlayer('core-memory')) add('chanlayer', 'core-memory', 1);
  if (chanlayer('pubsub-memory')) add('chanlayer', 'pubsub-memory', 1);
  if (chanlayer('core-newkey') && o.apart !== false) {
    add('chanlayer', 'core-newkey', 1);
    add('chanlayer', 'core-newkey', 3);
    onCluster('core-newkey');
  }
  // Several receiving layers sharing group state: not for the in-memory self-test.
  if (o.bigGroup !== false) {
    for (const id of ['core-group-slots', 'core-group-big-slots'] as const) {
      if (chanlayer(id)) add('chanlayer', id, 3);
      onCluster(id);
    }
  }
  // Two sides, a layer each.
  if (o.apart !== false) {
    for (const id of APART) {
      if (chanlayer(id)) add('chanlayer', id, 1);
      if (o.python) add('channels_redis', id, 1);
      if (o.bare && BARE_SCENARIOS.includes(id)) add('bare', id, 1);
    }
  }
  return runs;
}
