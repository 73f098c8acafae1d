/**
 * Failover check for a running topology (docker/failover-check.sh, or by hand next to
 * `scripts/redis-topology.ts sentinel`):
 *
 *   CHANNEL_LAYERS='{"default":{"BACKEND":"chanlayer.RedisChannelLayer","CONFIG":{"hosts":[…]}}}' \
 *     npx tsx scripts/failover-check.ts
 *
 * Builds its layer from `CHANNEL_LAYERS` (`getChannelLayer()`, alias from
 * `FAILOVER_CHECK_ALIAS`, default `default`), sends and receives continuously on one channel and
 * prints `READY` once messages flow. Then it waits for an outage (a 'disconnect' event, a send
 * error, or no message for a second) and for traffic to flow again. Exit status:
 *
 * - 0: messages flowed again after the outage with no duplicate and FIFO order kept; the
 *   observed gap, the errors surfaced and the acknowledged-but-lost messages are printed;
 * - 1: no outage, or no recovery, within `FAILOVER_CHECK_TIMEOUT_MS` (default 30000) each; or
 *   a duplicate / reordered message;
 * - 2: bad configuration.
 */
import { randomUUID } from 'node:crypto';
import { getChannelLayer, RedisPubSubChannelLayer, type ChannelLayer } from '../lib/index.ts';
import { TrafficProbe } from '../test/failover-probe.ts';

const timeoutMs = Number(process.env.FAILOVER_CHECK_TIMEOUT_MS ?? 30_000);
const alias = process.env.FAILOVER_CHECK_ALIAS ?? 'default';
/** No message for this long counts as an outage (traffic normally flows every few ms). */
const STALL_MS = 1000;

const say = (line: string): void => console.log(line);
const elapsed = (since: number): string => `${Date.now() - since} ms`;

if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
  console.error(`FAILOVER_CHECK_TIMEOUT_MS must be a positive number of ms, got ${timeoutMs}`);
  process.exit(2);
}

let layer: ChannelLayer | undefined;
try {
  layer = getChannelLayer(alias);
} catch (err) {
  console.error(`failover-check: cannot build the layer: ${(err as Error).message}`);
  process.exit(2);
}
if (!layer) {
  console.error(`failover-check: no channel layer "${alias}" configured (set CHANNEL_LAYERS)`);
  process.exit(2);
}
const name = layer.constructor.name;
if (name === 'InMemoryChannelLayer') {
  console.error('failover-check: CHANNEL_LAYERS is not set (or names the in-memory layer)');
  process.exit(2);
}

const events = layer as ChannelLayer & NodeJS.EventEmitter;
let outageAt: number | undefined;
let outageWhy = '';
const outage = (why: string): void => {
  if (outageAt !== undefined) return;
  outageAt = Date.now();
  outageWhy = why;
  say(`OUTAGE ${why} at ${new Date(outageAt).toISOString()}`);
};
events.on('disconnect', (shard: number) => outage(`shard ${shard} disconnected`));
events.on('reconnect', (shard: number) => say(`reconnect: shard ${shard}`));
events.on('failover', (shard: number, detail: unknown) =>
  say(`failover: shard ${shard} ${JSON.stringify(detail)}`),
);
events.on('error', (err: Error) => say(`error event: ${err.message}`));

const channel =
  layer instanceof RedisPubSubChannelLayer
    ? await layer.newChannel('failover-check.')
    : `failover-check.${randomUUID().replaceAll('-', '')}`;
const probe = new TrafficProbe(layer, channel, {
  tag: 'check',
  onSendError: (err) => {
    outage(`send error`);
    say(`send error: ${err.message}`);
  },
});

let exitCode = 1;
const stopOnSignal = (): void => {
  void probe
    .stop()
    .then(() => layer.close())
    .finally(() => process.exit(130));
};
process.once('SIGINT', stopOnSignal);
process.once('SIGTERM', stopOnSignal);

try {
  probe.start();
  await probe.receivedAtLeast(50, timeoutMs);
  const readyAt = Date.now();
  say(`READY ${name} on ${channel}`);

  // Outage: the events above, or receives stalling (checked after every receive and on a timer).
  const stall = setInterval(() => {
    const last = probe.receives.at(-1)?.at ?? readyAt;
    if (Date.now() - last >= STALL_MS) outage(`no message for ${STALL_MS} ms`);
  }, 100);
  try {
    await new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error(`no outage within ${timeoutMs} ms of READY`)),
        timeoutMs,
      );
      const check = setInterval(() => {
        if (outageAt === undefined) return;
        clearTimeout(deadline);
        clearInterval(check);
        resolve();
      }, 20);
    });
  } finally {
    clearInterval(stall);
  }
  const since = outageAt!;
  // The last message received before the outage showed (the gap starts there).
  const lastBefore = probe.receives.filter((r) => r.at <= since).at(-1)?.at ?? since;
  const resumed = await probe.resumedAfter(since, timeoutMs);
  say(
    `RESUMED ${elapsed(since)} after the outage was seen (${outageWhy}); ` +
      `no message received for ${resumed.receivedAt - lastBefore} ms`,
  );
  await probe.receivedAtLeast(probe.receives.length + 50, timeoutMs);
  const s = await probe.finish(timeoutMs);
  say(
    `sent ${s.sent}, acked ${s.acked}, received ${s.received}, acked-lost ${s.lost.length}` +
      `${s.lost.length ? ` (${s.lost.join(', ')}; asynchronous replication)` : ''}, duplicates ${
        s.duplicates.length
      }, out of order ${s.outOfOrder}, errors surfaced ${s.rejected} (${s.rejectedDelivered.length} delivered anyway), longest send ${s.maxSendMs} ms`,
  );
  for (const [message, n] of Object.entries(s.errors)) say(`  ${n} × ${message}`);
  if (s.duplicates.length > 0 || s.outOfOrder > 0) {
    say('FAIL: duplicated or reordered messages');
  } else {
    say('PASS');
    exitCode = 0;
  }
} catch (err) {
  say(`FAIL: ${(err as Error).message}`);
} finally {
  await probe.stop();
  await layer.close();
}
process.exit(exitCode);
