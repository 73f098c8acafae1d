/**
 * Quick Pub/Sub profile (not part of the bench table): one redis-server, the inflight and
 * ping-pong loops of the bench, client CPU µs per message. Run with `node --cpu-prof` to profile.
 *   node --import tsx bench/pubsub-profile.ts [inflight|pingpong|memory] [seconds] [hosts|cluster]
 * (`cluster`: a 3-master Redis Cluster, sharded Pub/Sub.)
 */
import { RedisPubSubChannelLayer } from '../lib/index.ts';
import { startCluster } from '../test/harness/cluster.ts';
import { startRedis } from '../test/harness/redis.ts';
import { stream } from './scenarios/stream.ts';
import { pingPongScenario } from './scenarios/pingpong.ts';
import { memoryScenario } from './scenarios/memory.ts';

const [what = 'inflight', secs = '3', hostCount = '1'] = process.argv.slice(2);
const redis =
  hostCount === 'cluster'
    ? await startCluster({ masters: 3, replicasPerMaster: 0 })
    : await startRedis({ count: Number(hostCount) });
const hosts = 'urls' in redis ? redis.urls : [{ cluster: redis.startupNodes() }];
const layer = new RedisPubSubChannelLayer({ hosts, capacity: 100_000 });
try {
  const cpu0 = process.cpuUsage();
  if (what === 'inflight') {
    const ch = await layer.newChannel();
    await stream(layer, ch, 64, 1, 10_000);
    const c0 = process.cpuUsage();
    const run = await stream(layer, ch, 64, Number(secs), 10_000);
    const c = process.cpuUsage(c0);
    console.log(
      `inflight: ${Math.round((run.received / run.elapsedMs) * 1000)} msg/s, ` +
        `${((c.user + c.system) / run.received).toFixed(1)} µs CPU/msg (user ${(c.user / run.received).toFixed(1)}), lost ${run.lost}`,
    );
  } else if (what === 'pingpong') {
    const r = await pingPongScenario(layer, {
      duration: Number(secs),
      warmup: 1,
      stallSeconds: 10,
    });
    const c = process.cpuUsage(cpu0);
    const msgs = r.info!.messages as number;
    console.log(
      `pingpong: p50 ${(r.metrics.p50 as number).toFixed(3)} ms p99 ${(r.metrics.p99 as number).toFixed(3)} ms, ` +
        `${((c.user + c.system) / msgs).toFixed(1)} µs CPU/msg`,
    );
  } else {
    const r = await memoryScenario(layer, { memoryChannels: 100_000 });
    console.log('memory', r.metrics, r.info);
  }
} finally {
  await layer.close();
  await redis.stop();
}
