/**
 * Probes of ioredis's Cluster client against a real Redis Cluster (test/harness/cluster.ts), for
 * designing the layers' cluster support; figures are recorded in docs/cluster.md.
 *
 *   npx tsx bench/cluster-probe.ts [probe…]   (names: PROBES at the end; default all)
 *
 * Each probe starts its own 3 × 1 cluster (cluster-node-timeout 1000) and prints its findings.
 */
import { Cluster, Redis } from 'ioredis';
import {
  startCluster,
  slotOf,
  type Cluster as TestCluster,
  type ClusterOptions,
} from '../test/harness/cluster.ts';
import { redisCommand } from '../test/harness/redis.ts';
import { waitFor } from '../test/harness/wait.ts';

const LUA_INCR = `redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])`;

type ScriptClient = Cluster & { incrget(key: string): Promise<string> };

const client = (cluster: TestCluster, options: object = {}): Cluster =>
  new Cluster(
    cluster.startupNodes().map(([host, port]) => ({ host, port })),
    options,
  );

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A key (or channel) named `prefix…` whose slot the given master owns. */
async function nameOn(cluster: TestCluster, prefix: string, port?: number): Promise<string> {
  for (let i = 0; ; i++) {
    const name = `${prefix}${i}`;
    if (port === undefined || (await cluster.ownerOf(slotOf(name))).port === port) return name;
  }
}

const commandStat = async (port: number, command: string): Promise<string> =>
  /cmdstat_(\w+):.*/
    .exec(
      String(await redisCommand(port, ['INFO', 'commandstats']))
        .split('\n')
        .find((l) => l.startsWith(`cmdstat_${command}:`)) ?? '',
    )?.[0]
    ?.trim() ?? `cmdstat_${command}: none`;

/** (a) A defineCommand script through Cluster: routing by first key, and a failover. */
async function scripts(cluster: TestCluster): Promise<void> {
  const c = client(cluster) as ScriptClient;
  c.defineCommand('incrget', { numberOfKeys: 1, lua: LUA_INCR });
  const keys = Array.from({ length: 30 }, (_, i) => `script:${i}`);
  for (const k of keys) await c.incrget(k);
  let routed = 0;
  for (const k of keys) {
    const owner = await cluster.ownerOf(slotOf(k));
    if ((await redisCommand(owner.port, ['GET', k])) === '1') routed++;
  }
  console.log(`scripts: ${routed}/${keys.length} keys incremented on their slot's owner`);
  const sha = String(await redisCommand(cluster.nodes[0]!.port, ['SCRIPT', 'LOAD', LUA_INCR]));
  const key = 'script:failover';
  await c.incrget(key);
  const victim = await cluster.ownerOf(slotOf(key));
  const [replica] = await cluster.replicasOf(victim);
  const onReplica = await redisCommand(replica!.port, ['SCRIPT', 'EXISTS', sha]);
  console.log(`scripts: script cached on the victim's replica before the kill: ${onReplica}`);

  const errors = new Map<string, number>();
  let ok = 0;
  let lastOkBefore = 0;
  let firstOkAfter = 0;
  let slowest = 0;
  const { killedAt } = await cluster.kill(victim);
  const promotion = cluster.promotedWithin(victim);
  let promotedAt = 0;
  void promotion.then((p) => (promotedAt = p.promotedAt));
  while (!promotedAt || Date.now() < promotedAt + 2000) {
    const t = Date.now();
    try {
      await c.incrget(key);
      ok++;
      if (!promotedAt) lastOkBefore = t;
      else if (!firstOkAfter) firstOkAfter = Date.now();
    } catch (err) {
      const msg = (err as Error).message.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'HOST').slice(0, 80);
      errors.set(msg, (errors.get(msg) ?? 0) + 1);
    }
    slowest = Math.max(slowest, Date.now() - t);
    await sleep(20);
  }
  const p = await promotion;
  console.log(
    `scripts: promoted ${p.ms} ms after kill; calls ok ${ok}; first ok after promotion +${firstOkAfter ? firstOkAfter - p.promotedAt : 'never'} ms; last ok before promotion at kill+${lastOkBefore ? lastOkBefore - killedAt : '-'} ms; slowest call ${slowest} ms`,
  );
  for (const [m, n] of errors) console.log(`scripts:   ${n} × ${m}`);
  console.log(
    `scripts: promoted node ${await commandStat(p.node.port, 'evalsha')}; ${await commandStat(p.node.port, 'eval')}`,
  );
  console.log(`scripts: value after failover ${await c.get(key)}`);
  c.disconnect();
}

/** (b1) SSUBSCRIBE of channels in different slots in one call. */
async function pubsubCross(cluster: TestCluster): Promise<void> {
  const sub = client(cluster, { shardedSubscribers: true });
  const a = 'cross:a';
  let b = 'cross:b';
  for (let i = 0; slotOf(b) === slotOf(a); i++) b = `cross:b${i}`;
  try {
    await sub.ssubscribe(a, b);
    console.log('pubsub-cross: accepted');
  } catch (err) {
    console.log(`pubsub-cross: refused: ${(err as Error).name}: ${(err as Error).message}`);
  }
  const plain = client(cluster);
  const settled = await Promise.race([
    plain.ssubscribe(a).then(
      () => 'settled',
      (err: Error) => `rejected: ${err.message}`,
    ),
    sleep(3000).then(() => 'still pending after 3 s'),
  ]);
  console.log(`pubsub-cross: without shardedSubscribers, ssubscribe(one channel): ${settled}`);
  sub.disconnect();
  plain.disconnect();
}

/** Publish `channel` every `everyMs` with a sequence number until stopped. */
function publisher(pub: Cluster, channel: string, everyMs = 10) {
  let seq = 0;
  let stopped = false;
  let unheard = 0; // published fine, but no subscriber received it
  const errors = new Map<string, number>();
  const done = (async () => {
    while (!stopped) {
      const n = seq++;
      pub.spublish(channel, String(n)).then(
        (receivers) => {
          if (receivers === 0) unheard++;
        },
        (err: Error) => {
          const m = err.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'HOST').slice(0, 80);
          errors.set(m, (errors.get(m) ?? 0) + 1);
        },
      );
      await sleep(everyMs);
    }
  })();
  return {
    errors,
    sent: () => seq,
    unheard: () => unheard,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

function receiver(sub: Cluster, channel: string) {
  const got: Array<{ n: number; at: number }> = [];
  sub.on('smessage', (ch: string, msg: string) => {
    if (ch === channel) got.push({ n: Number(msg), at: Date.now() });
  });
  return got;
}

/** Counts the client's events (and distinct error texts) with the first and last time seen. */
function countEvents(sub: Cluster, since: () => number) {
  const seen = new Map<string, { n: number; first: number; last: number }>();
  const note = (what: string): void => {
    const at = Date.now() - since();
    const e = seen.get(what) ?? { n: 0, first: at, last: at };
    seen.set(what, { n: e.n + 1, first: e.first, last: at });
  };
  const text = (err: Error): string => err.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'HOST');
  for (const ev of [
    '+subscriber',
    '-subscriber',
    'subscribersReady',
    '+node',
    '-node',
    'refresh',
  ]) {
    sub.on(ev, () => note(ev));
  }
  sub.on('nodeError', (err: Error) => note(`nodeError: ${text(err)}`));
  sub.on('error', (err: Error) => note(`error: ${text(err)}`));
  return {
    reset: () => seen.clear(),
    print: (tag: string) => {
      for (const [what, { n, first, last }] of seen)
        console.log(`${tag}:   ${n} × ${what} (+${first} … +${last} ms)`);
    },
  };
}

/**
 * A sharded subscriber to `channel` with messages flowing (every 10 ms) from `pub`, or from
 * the subscriber itself. `mark()` restarts the event count and returns the time it did.
 */
async function flowing(cluster: TestCluster, channel: string, self = false) {
  const sub = client(cluster, { shardedSubscribers: true });
  const pub = self ? sub : client(cluster);
  let t0 = Date.now();
  const events = countEvents(sub, () => t0);
  const got = receiver(sub, channel);
  await sub.ssubscribe(channel);
  const p = publisher(pub, channel);
  await waitFor(() => got.length > 5, { what: `messages on ${channel}` });
  return {
    sub,
    got,
    p,
    events,
    mark: () => {
      events.reset();
      return (t0 = Date.now());
    },
    close: async () => {
      await p.stop();
      sub.disconnect();
      pub.disconnect();
    },
  };
}

/** (b2) Sharded subscription across a master SIGKILL. */
async function pubsubKill(cluster: TestCluster): Promise<void> {
  const victim = (await cluster.masters())[0]!;
  const { got, p, events, mark, close } = await flowing(
    cluster,
    await nameOn(cluster, 'killch:', victim.port),
  );
  mark();
  await cluster.kill(victim);
  const promotion = await cluster.promotedWithin(victim);
  const before = got.filter((g) => g.at < promotion.killedAt).length;
  await waitFor(() => got.some((g) => g.at > promotion.promotedAt), {
    timeoutMs: 20_000,
    what: 'a message after promotion',
  });
  const first = got.find((g) => g.at > promotion.promotedAt)!;
  await sleep(500);
  await close();
  console.log(
    `pubsub-kill: promoted ${promotion.ms} ms after kill; first message after promotion +${first.at - promotion.promotedAt} ms (seq ${first.n}); received ${got.length} of ${p.sent()} sent (${before} before the kill)`,
  );
  for (const [m, n] of p.errors) console.log(`pubsub-kill:   publish failed ${n} × ${m}`);
  console.log('pubsub-kill: subscriber client events from the kill on:');
  events.print('pubsub-kill');
}

/**
 * (b3) Sharded subscription across a live migration of its slot; with `self`, the subscribing
 * client also publishes (its own MOVED makes it refresh the slot map).
 */
async function pubsubMove(cluster: TestCluster, self = false): Promise<void> {
  const channel = 'movech:0';
  const slot = slotOf(channel);
  const from = await cluster.ownerOf(slot);
  const to = (await cluster.masters()).find((m) => m !== from)!;
  const { sub, got, p, events, mark, close } = await flowing(cluster, channel, self);
  console.log(`pubsub-move: publisher is ${self ? 'the subscribing client' : 'another client'}`);
  const t0 = mark();
  await cluster.migrateSlot(slot, to);
  const movedAt = Date.now();
  console.log(`pubsub-move: slot ${slot} moved :${from.port} → :${to.port} in ${movedAt - t0} ms`);
  await sleep(2000);
  const after = got.filter((g) => g.at > movedAt).length;
  console.log(
    `pubsub-move: messages received in the 2 s after the move: ${after}; publishes answered "0 receivers" so far: ${p.unheard()}`,
  );
  const subs = await redisCommand(to.port, ['PUBSUB', 'SHARDNUMSUB', channel]);
  console.log(`pubsub-move: new owner PUBSUB SHARDNUMSUB ${JSON.stringify(subs)}`);
  console.log('pubsub-move: subscriber client events from the move on:');
  events.print('pubsub-move');
  // What a layer could do: make the client re-read the slots; its subscriber group resubscribes.
  const refreshAt = Date.now();
  await new Promise<void>((resolve, reject) =>
    (sub as unknown as { refreshSlotsCache(cb: (err?: Error) => void): void }).refreshSlotsCache(
      (err) => (err ? reject(err) : resolve()),
    ),
  );
  await waitFor(() => got.some((g) => g.at > refreshAt), {
    timeoutMs: 5000,
    what: 'a message after refreshSlotsCache',
  }).then(
    () => {
      const first = got.find((g) => g.at > refreshAt)!;
      console.log(
        `pubsub-move: after refreshSlotsCache(): first message +${first.at - refreshAt} ms`,
      );
    },
    (err: Error) => console.log(`pubsub-move: after refreshSlotsCache(): ${err.message}`),
  );
  await close();
}

/** (c) A dedicated blocking connection per master; the slot map; MOVED on a blocked BZPOPMIN. */
async function blocking(cluster: TestCluster): Promise<void> {
  const c = client(cluster);
  await c.ping();
  const masters = c.nodes('master');
  const t = Date.now();
  const dedicated = await Promise.all(
    masters.map(async (node) => {
      const r = new Redis({ ...node.options, lazyConnect: true });
      const s = Date.now();
      await r.connect();
      return { r, ms: Date.now() - s };
    }),
  );
  console.log(
    `blocking: ${masters.length} dedicated connections ready in ${Date.now() - t} ms (each ${dedicated.map((d) => d.ms).join(', ')} ms)`,
  );
  const before = Number(
    /used_memory:(\d+)/.exec(
      String(await redisCommand(masters[0]!.options.port!, ['INFO', 'memory'])),
    )?.[1],
  );
  const extra = await Promise.all(
    Array.from({ length: 100 }, async () => {
      const r = new Redis({ ...masters[0]!.options });
      await r.ping();
      return r;
    }),
  );
  const afterMem = Number(
    /used_memory:(\d+)/.exec(
      String(await redisCommand(masters[0]!.options.port!, ['INFO', 'memory'])),
    )?.[1],
  );
  console.log(
    `blocking: server memory per idle connection ≈ ${Math.round((afterMem - before) / 100)} bytes`,
  );
  for (const r of extra) r.disconnect();

  const key = 'block:q';
  const slot = slotOf(key);
  const ownerKey = c.slots[slot];
  console.log(`blocking: cluster.slots[${slot}] = ${JSON.stringify(ownerKey)} (master first)`);
  const owner = dedicated.find(
    (d) => `${d.r.options.host}:${d.r.options.port}` === ownerKey![0],
  )!.r;
  // Wake latency through the dedicated connection.
  const lat: number[] = [];
  for (let i = 0; i < 50; i++) {
    const popped = owner.bzpopmin(key, 5);
    await sleep(2);
    const s = process.hrtime.bigint();
    await c.zadd(key, 1, `m${i}`);
    await popped;
    lat.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  lat.sort((a, b) => a - b);
  console.log(
    `blocking: ZADD → BZPOPMIN return on the dedicated connection p50 ${lat[25]!.toFixed(2)} ms, max ${lat[49]!.toFixed(2)} ms`,
  );
  // A BZPOPMIN blocked on the old owner when the slot moves.
  const to = (await cluster.masters()).find((m) => `127.0.0.1:${m.port}` !== ownerKey![0])!;
  const blocked = owner.bzpopmin(key, 10).then(
    (v) => ({ value: v, at: Date.now() }),
    (err: Error) => ({ error: err.message, at: Date.now() }),
  );
  await sleep(50);
  const moveStart = Date.now();
  await cluster.migrateSlot(slot, to);
  const outcome = await blocked;
  console.log(
    `blocking: blocked BZPOPMIN during migrateSlot (took ${Date.now() - moveStart} ms): ${JSON.stringify({ ...outcome, at: outcome.at - moveStart })}`,
  );
  console.log(`blocking: cluster.slots[${slot}] before refresh ${JSON.stringify(c.slots[slot])}`);
  await c.zcard(key); // a keyed command gets MOVED → ioredis refreshes the slot map
  await waitFor(() => c.slots[slot]?.[0] === `127.0.0.1:${to.port}`, {
    timeoutMs: 5000,
    what: 'the slot map to follow the MOVED',
  }).catch((err: Error) => console.log(`blocking: ${err.message}`));
  console.log(`blocking: cluster.slots[${slot}] after a MOVED ${JSON.stringify(c.slots[slot])}`);
  for (const d of dedicated) d.r.disconnect();
  c.disconnect();
}

/** (d) Auto-pipelined per-key EVALSHA to 1,000 keys across slots: writes per node. */
async function fanout(cluster: TestCluster): Promise<void> {
  const c = client(cluster, { enableAutoPipelining: true }) as ScriptClient;
  c.defineCommand('incrget', { numberOfKeys: 1, lua: LUA_INCR });
  const keys = Array.from({ length: 1000 }, (_, i) => `fan:${i}`);
  await Promise.all(keys.slice(0, 3).map((k) => c.incrget(k))); // load scripts, connect
  const writes = new Map<string, number>();
  for (const node of c.nodes('master')) {
    const stream = (node as unknown as { stream: { write: (...a: unknown[]) => boolean } }).stream;
    const id = `${node.options.host}:${node.options.port}`;
    const write = stream.write.bind(stream);
    stream.write = (...a: unknown[]) => {
      writes.set(id, (writes.get(id) ?? 0) + 1);
      return write(...a);
    };
  }
  for (const round of [1, 2, 3]) {
    writes.clear();
    const t = process.hrtime.bigint();
    await Promise.all(keys.map((k) => c.incrget(k)));
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    console.log(
      `fanout: round ${round}: 1,000 calls in ${ms.toFixed(1)} ms; socket writes per master ${JSON.stringify(Object.fromEntries(writes))}`,
    );
  }
  const seq = process.hrtime.bigint();
  for (const k of keys) await c.incrget(k);
  console.log(
    `fanout: the same 1,000 awaited one by one: ${(Number(process.hrtime.bigint() - seq) / 1e6).toFixed(1)} ms`,
  );
  c.disconnect();
}

/**
 * Keys on healthy masters while another master fails over: every 10 ms a GET on each of two
 * keys of the surviving masters, from the kill until 1 s after the promotion.
 */
async function coverage(cluster: TestCluster): Promise<void> {
  const [, full] = (await redisCommand(cluster.nodes[0]!.port, [
    'CONFIG',
    'GET',
    'cluster-require-full-coverage',
  ])) as string[];
  const c = client(cluster);
  const [victim, ...healthy] = await cluster.masters();
  const keys = await Promise.all(healthy.map((m, i) => nameOn(cluster, `healthy${i}:`, m.port)));
  await Promise.all(keys.map((k) => c.set(k, 'v')));
  const failures = new Map<string, number>();
  let calls = 0;
  let slowest = 0;
  await cluster.kill(victim!);
  let promotedAt = 0;
  const promotion = cluster.promotedWithin(victim!).then((p) => {
    promotedAt = p.promotedAt;
    return p;
  });
  while (!promotedAt || Date.now() < promotedAt + 1000) {
    const t = Date.now();
    await Promise.all(
      keys.map((k) =>
        c.get(k).then(
          () => calls++,
          (err: Error) => {
            const m = err.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'HOST').slice(0, 80);
            failures.set(m, (failures.get(m) ?? 0) + 1);
          },
        ),
      ),
    );
    slowest = Math.max(slowest, Date.now() - t);
    await sleep(10);
  }
  const p = await promotion;
  console.log(
    `coverage (require-full-coverage ${full}): promoted ${p.ms} ms after kill; GETs on healthy masters ok ${calls}, slowest round ${slowest} ms`,
  );
  for (const [m, n] of failures) console.log(`coverage:   ${n} × ${m}`);
  c.disconnect();
}

/** A dedicated connection blocked in BZPOPMIN on a master that is SIGKILLed. */
async function blockingKill(cluster: TestCluster): Promise<void> {
  const c = client(cluster);
  const key = 'blockkill:q';
  const slot = slotOf(key);
  await c.zcard(key);
  const victim = await cluster.ownerOf(slot);
  const node = c.nodes('master').find((n) => n.options.port === victim.port)!;
  const dedicated = new Redis({ ...node.options });
  let t0 = Date.now();
  const events: string[] = [];
  for (const ev of ['close', 'reconnecting', 'end', 'ready']) {
    dedicated.on(ev, () => events.push(`${ev}@+${Date.now() - t0}`));
  }
  dedicated.on('error', () => {}); // counted through 'reconnecting'
  let slotsChangedAt = 0;
  c.on('refresh', () => {
    if (!slotsChangedAt && c.slots[slot]?.[0] !== `127.0.0.1:${victim.port}`) {
      slotsChangedAt = Date.now();
    }
  });
  await dedicated.ping();
  const blocked = dedicated.bzpopmin(key, 0).then(
    (v) => `resolved ${JSON.stringify(v)} @+${Date.now() - t0}`,
    (err: Error) => `rejected "${err.message}" @+${Date.now() - t0}`,
  );
  await sleep(50);
  t0 = Date.now();
  await cluster.kill(victim);
  const p = await cluster.promotedWithin(victim);
  // Idle Cluster client: does its slot map follow the promotion without a command?
  await sleep(3000);
  const idle = c.slots[slot]?.[0];
  const outcome = await Promise.race([blocked, sleep(100).then(() => 'still pending')]);
  console.log(
    `blocking-kill: promoted ${p.ms} ms after kill; blocked BZPOPMIN: ${outcome}; dedicated connection events: ${events.length} (${events.slice(0, 4).join(' ')} … ${events.slice(-2).join(' ')})`,
  );
  console.log(
    `blocking-kill: idle Cluster client's slot map 3 s after promotion: ${idle === `127.0.0.1:${p.node.port}` ? 'promoted node' : `still ${idle}`}${slotsChangedAt ? ` (changed at +${slotsChangedAt - t0} ms)` : ''}`,
  );
  await c.zcard(key);
  console.log(
    `blocking-kill: after one keyed command: ${c.slots[slot]?.[0] === `127.0.0.1:${p.node.port}` ? 'promoted node' : c.slots[slot]?.[0]}`,
  );
  dedicated.disconnect();
  c.disconnect();
}

const PROBES: Record<string, [(c: TestCluster) => Promise<void>, ClusterOptions?]> = {
  scripts: [scripts],
  'pubsub-cross': [pubsubCross],
  'pubsub-kill': [pubsubKill],
  'pubsub-move': [(c) => pubsubMove(c)],
  'pubsub-move-self': [(c) => pubsubMove(c, true)],
  blocking: [blocking],
  'blocking-kill': [blockingKill],
  fanout: [fanout],
  'coverage-no': [coverage],
  'coverage-yes': [coverage, { requireFullCoverage: true }],
};

const names = process.argv.slice(2);
for (const name of names.length ? names : Object.keys(PROBES)) {
  const probe = PROBES[name];
  if (!probe) throw new Error(`unknown probe ${name} (known: ${Object.keys(PROBES).join(', ')})`);
  const [run, options] = probe;
  const cluster = await startCluster(options);
  try {
    await run(cluster);
  } finally {
    await cluster.stop();
  }
}
