/**
 * The `chanlayer` command line → what to read: the subcommand, the shards (from `--hosts`, else
 * the `CHANNEL_LAYERS` environment variable the application reads, alias `--layer`), the prefix,
 * group expiry, liveness threshold and output options. Bad input is a ConfigurationError.
 */
import { parseArgs } from 'node:util';
import type { LayerConfig } from '../channel-layers.ts';
import { fromDjangoConfig, resolveOptions, type HostEntry, type LayerOptions } from '../config.ts';
import { ConfigurationError } from '../errors.ts';
import { clusterOf, parseHost, type ClusterSpec, type ShardSpec } from '../redis/hosts.ts';
import { crc32Placement, ringPlacement, type Placement } from '../redis/placement.ts';

export const USAGE = `usage: chanlayer <inspect|top> [options]

  inspect            groups (live members), channel queues (depth, oldest message),
                     processes (alive/dead, last heartbeat); --json for a script
  top                the same, live, every second, with estimated rates (Ctrl-C to quit)

options:
  --hosts URL...     Redis hosts, one shard each (repeat, or space-separated); default:
                     the CHANNEL_LAYERS environment variable (JSON, Django style; a
                     { cluster } entry: every master of the Redis Cluster is read)
  --layer ALIAS      which CHANNEL_LAYERS entry (default: default)
  --prefix P         key prefix (default: the layer's, else asgi)
  --group-expiry S   seconds a membership lives (default: the layer's, else 86400)
  --dead-after MS    a process silent this long is dead (default: the layer's
                     liveness.deadAfterMs, else 30000)
  --limit N          look at no more than N keys per host (default 10000)
  --json             inspect: print JSON { groups, queues, processes }
  --once             top: print one frame and exit (no screen control)
  --interval MS      top: refresh period (default 1000)

top's rates are estimates (all a read-only observer can see is what is in Redis):
in/s = entries newer than the newest one of the last frame, out/s = the last depth +
in − the depth now. A message sent and received between two frames is seen by
neither, so both are lower bounds: a queue whose consumer keeps up shows ~0. A
group's rates are those of its live members' queues (a group send leaves no trace
in the group's key).

Read-only: SCAN (never KEYS), TYPE, ZCARD, ZRANGE, ZCOUNT, ZRANGEBYSCORE, TIME, PING.
Works as the least-privilege ACL user of the README.`;

export interface CliOptions {
  command: 'inspect' | 'top' | 'help';
  /** The hosts, one shard each; empty for a Redis Cluster. */
  shards: ShardSpec[];
  /** A Redis Cluster (its only hosts entry): its masters are found when connecting. */
  cluster: ClusterSpec | undefined;
  /** Placement over `shards` (finds the liveness registry). */
  placement: Placement;
  prefix: string;
  groupExpiryMs: number;
  deadAfterMs: number;
  commandTimeoutMs: number;
  limit: number;
  json: boolean;
  once: boolean;
  intervalMs: number;
}

const DEAD_AFTER_MS = 30_000;
const LIMIT = 10_000;
const INTERVAL_MS = 1000;

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) {
    throw new ConfigurationError(`--${flag} must be a positive number, got "${value}"`);
  }
  return n;
}

/** The `CONFIG` of alias `alias` in CHANNEL_LAYERS, or undefined when the variable is unset. */
function layerConfig(env: NodeJS.ProcessEnv, alias: string): Record<string, unknown> | undefined {
  const text = env.CHANNEL_LAYERS;
  if (!text) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigurationError(`CHANNEL_LAYERS is not valid JSON: ${(err as Error).message}`);
  }
  const entry = (parsed as Record<string, LayerConfig> | null)?.[alias];
  if (!entry || typeof entry !== 'object') {
    throw new ConfigurationError(`CHANNEL_LAYERS has no layer "${alias}"`);
  }
  // It has no hosts: reading the default Redis instead would show somebody else's data.
  if (/InMemoryChannelLayer$/.test(String(entry.BACKEND))) {
    throw new ConfigurationError(
      `CHANNEL_LAYERS layer "${alias}" is ${entry.BACKEND}: it keeps nothing in Redis`,
    );
  }
  return entry.CONFIG ?? {};
}

/** `liveness.deadAfterMs` (or `dead_after_ms`) of a layer's CONFIG, if it sets one. */
function configuredDeadAfter(config: Record<string, unknown>): number | undefined {
  const liveness = config.liveness as Record<string, unknown> | false | undefined;
  if (!liveness || typeof liveness !== 'object') return undefined;
  const value = liveness.deadAfterMs ?? liveness.dead_after_ms;
  return typeof value === 'number' ? value : undefined;
}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        hosts: { type: 'string', multiple: true },
        layer: { type: 'string', default: 'default' },
        prefix: { type: 'string' },
        'group-expiry': { type: 'string' },
        'dead-after': { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean', default: false },
        once: { type: 'boolean', default: false },
        interval: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new ConfigurationError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const command = values.help ? 'help' : (positionals[0] ?? 'help');
  if (command !== 'inspect' && command !== 'top' && command !== 'help') {
    throw new ConfigurationError(`unknown command "${command}" (known: inspect, top)`);
  }
  // `--hosts a b` leaves b as an argument of its own; `--hosts a --hosts b` works too.
  const extra = positionals.slice(1);
  const stray = extra.find((arg) => values.hosts === undefined || !/^rediss?:\/\//.test(arg));
  if (stray !== undefined) throw new ConfigurationError(`unexpected argument "${stray}"`);
  const hostFlags = values.hosts && [...values.hosts, ...extra];
  const config = hostFlags?.length ? {} : (layerConfig(env, values.layer) ?? {});
  const layer = fromDjangoConfig(config);
  // Only what the command reads: other options of the application's layer do not matter here.
  const picked: LayerOptions = {
    hosts: hostFlags?.length ? (hostFlags as HostEntry[]) : layer.hosts,
    prefix: values.prefix ?? layer.prefix,
    groupExpiry: positiveNumber('group-expiry', values['group-expiry']) ?? layer.groupExpiry,
    sharding: layer.sharding,
    commandTimeoutMs: layer.commandTimeoutMs,
  };
  const options = resolveOptions(picked);
  const cluster = clusterOf(options.hosts);
  const shards = cluster ? [] : options.hosts.map((entry, i) => parseHost(entry, i));
  return {
    command,
    shards,
    cluster,
    placement:
      options.sharding === 'ring'
        ? ringPlacement(shards.map((s) => s.id))
        : crc32Placement(shards.length),
    prefix: options.prefix,
    groupExpiryMs: options.groupExpiryMs,
    deadAfterMs:
      positiveNumber('dead-after', values['dead-after']) ??
      configuredDeadAfter(config) ??
      DEAD_AFTER_MS,
    commandTimeoutMs: options.commandTimeoutMs,
    limit: positiveNumber('limit', values.limit) ?? LIMIT,
    json: values.json,
    once: values.once,
    intervalMs: positiveNumber('interval', values.interval) ?? INTERVAL_MS,
  };
}
