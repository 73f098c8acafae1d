/**
 * The command's connections: one Shard per host (Sentinel groups included), or, for a Redis
 * Cluster, one per master found at start (a SCAN only sees the node it runs on; each key's
 * commands then go to the node that listed it). Named `chanlayer:cli` in CLIENT LIST.
 */
import { Cluster } from 'ioredis';
import { deadline } from '../deadline.ts';
import { ConnectionError, errorMessage } from '../errors.ts';
import type { ClusterSpec, ShardSpec } from '../redis/hosts.ts';
import { Shard } from '../redis/shard.ts';
import type { CliOptions } from './args.ts';

const NAME = 'chanlayer:cli';

/** The masters of `spec` as plain shard specs (the discovery connections are closed again). */
async function clusterMasters(spec: ClusterSpec, timeoutMs: number): Promise<ShardSpec[]> {
  const nodeOptions = { ...spec.options.redisOptions, connectionName: NAME };
  const cluster = new Cluster(spec.startupNodes, {
    ...spec.options,
    lazyConnect: true,
    redisOptions: nodeOptions,
  });
  cluster.on('error', () => {}); // the rejection of connect() says it
  try {
    await deadline(
      cluster.connect(),
      timeoutMs,
      () => new ConnectionError(`Redis Cluster ${spec.id}: not ready within ${timeoutMs} ms`, 0),
    );
    return cluster.nodes('master').map((node) => {
      const { host = '127.0.0.1', port = 6379 } = node.options;
      return { id: `${host}:${port}`, url: undefined, options: { ...nodeOptions, host, port } };
    });
  } catch (err) {
    throw err instanceof ConnectionError
      ? err
      : new ConnectionError(`Redis Cluster ${spec.id}: ${errorMessage(err)}`, 0, { cause: err });
  } finally {
    cluster.disconnect();
  }
}

export async function openShards(opts: CliOptions): Promise<Shard[]> {
  const specs = opts.cluster
    ? await clusterMasters(opts.cluster, opts.commandTimeoutMs)
    : opts.shards.map((spec) => ({ ...spec, options: { ...spec.options, connectionName: NAME } }));
  return specs.map(
    (spec, i) =>
      new Shard(i, spec, {
        commandTimeoutMs: opts.commandTimeoutMs,
        lazyConnect: true,
        failFast: true,
      }),
  );
}

/**
 * Shards holding the liveness registry: the one the hosts' placement gives `:processes`; on a
 * cluster, whichever master has its slot (each is asked; the others have no such key).
 */
export function registryShards(opts: CliOptions, shards: readonly Shard[]): number[] {
  return opts.cluster ? shards.map((s) => s.index) : [opts.placement.index(':processes')];
}
