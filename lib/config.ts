/**
 * Layer options: the README's camelCase options, defaults, validation, and the translation of a
 * Django `CONFIG` block (snake_case keys, `("host", port)` tuples) into it.
 */
import { ConfigurationError } from './errors.ts';

/** A Redis host: a URL, `{ address, …ioredis options }`, a Sentinel group, or a Redis Cluster. */
export type HostEntry = string | AddressHost | SentinelHost | ClusterHost;

export interface AddressHost {
  address: string;
  [redisOption: string]: unknown;
}

export interface SentinelHost {
  sentinels: Array<[string, number]>;
  masterName: string;
  db?: number;
  username?: string;
  password?: string;
  sentinelKwargs?: { username?: string; password?: string };
  [redisOption: string]: unknown;
}

/**
 * A Redis Cluster (the only entry of `hosts`): startup nodes as `[host, port]` pairs or
 * `redis://` / `rediss://` URLs; `username`, `password`, `tls` apply to every node (ioredis
 * `redisOptions`); any other key is an ioredis `ClusterOptions` option.
 */
export interface ClusterHost {
  cluster: Array<[host: string, port?: number] | string>;
  username?: string;
  password?: string;
  tls?: object;
  [clusterOption: string]: unknown;
}

/** Whether `entry` is a `{ cluster }` entry (its shape is checked when a layer parses it). */
export function isClusterHost(entry: unknown): entry is ClusterHost {
  return typeof entry === 'object' && entry !== null && 'cluster' in entry;
}

export type CapacityRules = Record<string, number> | Array<[RegExp | string, number]>;

export interface LayerOptions {
  hosts?: HostEntry[];
  prefix?: string;
  expiry?: number;
  groupExpiry?: number;
  capacity?: number;
  channelCapacity?: CapacityRules;
  symmetricEncryptionKeys?: string[];
  encryption?: 'fernet' | 'secretbox';
  randomPrefixLength?: number;
  serializerFormat?: string;
  maxMessageBytes?: number;
  sharding?: 'crc32' | 'ring';
  /**
   * Core layer, several hosts: where `send` puts a normal (non-`!`) channel's messages. `'name'`
   * (default): the shard of the channel's name — one shard per channel, so FIFO per sender.
   * `'round-robin'`: the next host in turn, as channels_redis does — needed when channels_redis
   * *receivers* consume the channel (each of their receives waits on one host in turn).
   */
  normalChannelSharding?: 'name' | 'round-robin';
  /**
   * Pub/Sub layer on a Redis Cluster: `'sharded'` (default) uses SSUBSCRIBE/SPUBLISH, each
   * message handled by the channel's slot owner only; `'global'` uses SUBSCRIBE/PUBLISH, every
   * publish broadcast to every node.
   */
  clusterPubSub?: 'sharded' | 'global';
  /** Longest wait for a Redis reply (ms), including time queued while reconnecting; default 5000. */
  commandTimeoutMs?: number;
  /** Core layer, Fernet: tokens older than `expiry` + this many seconds are refused (default 10, as channels_redis). */
  fernetTtlSlack?: number;
  onDisconnect?: (shard: number) => void;
  onReconnect?: (shard: number) => void;
  /** Where skipped payloads and connection trouble are reported; default `console`. */
  logger?: Logger;
  /**
   * Core layer: this process registers itself with a heartbeat, and group sends skip (and
   * remove from the group) the channels of registered processes silent for `deadAfterMs`.
   * `false` turns it off; `true` or `{}` means the defaults (5000 ms, 30000 ms).
   */
  liveness?: LivenessOption | boolean;
}

export interface LivenessOption {
  heartbeatMs?: number;
  deadAfterMs?: number;
}

/**
 * Every option name, so a misspelt one is refused rather than silently ignored (channels_redis
 * raises TypeError for an unknown keyword). `satisfies` keeps the list in step with LayerOptions.
 */
const OPTION_NAMES = Object.keys({
  hosts: true,
  prefix: true,
  expiry: true,
  groupExpiry: true,
  capacity: true,
  channelCapacity: true,
  symmetricEncryptionKeys: true,
  encryption: true,
  randomPrefixLength: true,
  serializerFormat: true,
  maxMessageBytes: true,
  sharding: true,
  normalChannelSharding: true,
  clusterPubSub: true,
  commandTimeoutMs: true,
  fernetTtlSlack: true,
  onDisconnect: true,
  onReconnect: true,
  logger: true,
  liveness: true,
} satisfies Record<keyof LayerOptions, true>);

const LIVENESS_NAMES = Object.keys({
  heartbeatMs: true,
  deadAfterMs: true,
} satisfies Record<keyof LivenessOption, true>);

export interface Logger {
  warn(message: string): void;
}

export interface ResolvedOptions {
  hosts: HostEntry[];
  prefix: string;
  /** Milliseconds, from the `expiry` seconds option. */
  expiryMs: number;
  groupExpiryMs: number;
  capacity: number;
  capacityRules: Array<[RegExp, number]>;
  symmetricEncryptionKeys: readonly string[] | undefined;
  encryption: 'fernet' | 'secretbox';
  randomPrefixLength: number;
  serializerFormat: string;
  maxMessageBytes: number;
  sharding: 'crc32' | 'ring';
  normalChannelSharding: 'name' | 'round-robin';
  clusterPubSub: 'sharded' | 'global';
  commandTimeoutMs: number;
  fernetTtlSlack: number;
  liveness: { heartbeatMs: number; deadAfterMs: number } | false;
}

export const DEFAULTS = {
  hosts: ['redis://localhost:6379'],
  prefix: 'asgi',
  expiry: 60,
  groupExpiry: 86400,
  capacity: 100,
  encryption: 'fernet',
  randomPrefixLength: 12,
  serializerFormat: 'msgpack',
  maxMessageBytes: 4 * 1024 * 1024,
  sharding: 'crc32',
  commandTimeoutMs: 5000,
  fernetTtlSlack: 10,
  liveness: { heartbeatMs: 5000, deadAfterMs: 30000 },
} as const;

/** A bad value as the error shows it: strings quoted, with the type when it is not a number. */
function shown(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return `${JSON.stringify(value)} (a string)`;
  return `${String(value)} (${value === null ? 'null' : typeof value})`;
}

/** Edit distance, for suggesting the option a misspelt key meant. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1;
      next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + cost));
    }
    row = next;
  }
  return row[b.length]!;
}

function refuseUnknownKeys(input: object, names = OPTION_NAMES, what = 'option'): void {
  const known = new Set(names);
  for (const key of Object.keys(input)) {
    if (known.has(key)) continue;
    // A Django spelling (group_expiri) is best matched among the snake_case names.
    const candidates = key.includes('_') ? names.map(snakeCase) : names;
    let best = candidates[0]!;
    for (const name of candidates) if (distance(key, name) < distance(key, best)) best = name;
    throw new ConfigurationError(`Unknown ${what} "${key}" (did you mean "${best}"?)`);
  }
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function positive(name: string, value: unknown, { integer = false } = {}): number {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value <= 0 ||
    (integer && !Number.isInteger(value))
  ) {
    throw new ConfigurationError(
      `${name} must be a positive ${integer ? 'integer' : 'number'}, got ${shown(value)}`,
    );
  }
  return value;
}

function nonNegative(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ConfigurationError(`${name} must be a number ≥ 0, got ${shown(value)}`);
  }
  return value;
}

/** fnmatch-style glob (`*`, `?`, `[seq]`), anchored like Python's `fnmatch.translate`. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) re += '\\[';
      else {
        let body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = '^' + body.slice(1);
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]-]/g, '\\$&');
  }
  return new RegExp(`^(?:${re})$`, 's');
}

function compileCapacities(rules: CapacityRules | undefined): Array<[RegExp, number]> {
  if (rules === undefined || rules === null) return [];
  const pairs = Array.isArray(rules) ? rules : Object.entries(rules);
  return pairs.map(([pattern, cap]) => {
    positive(`channelCapacity[${String(pattern)}]`, cap, { integer: true });
    if (pattern instanceof RegExp) return [pattern, cap];
    if (typeof pattern === 'string') return [globToRegExp(pattern), cap];
    throw new ConfigurationError(
      `channelCapacity pattern must be a glob string or RegExp, got ${String(pattern)}`,
    );
  });
}

/** `liveness`: false, or both periods (a process must beat more often than it is judged). */
function resolveLiveness(input: unknown): ResolvedOptions['liveness'] {
  if (input === false) return false;
  if (input === undefined || input === true) return { ...DEFAULTS.liveness };
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ConfigurationError(
      `liveness must be false or { heartbeatMs, deadAfterMs }, got ${shown(input)}`,
    );
  }
  refuseUnknownKeys(input, LIVENESS_NAMES, 'liveness option');
  const given = input as LivenessOption;
  const heartbeatMs = positive(
    'liveness.heartbeatMs',
    given.heartbeatMs ?? DEFAULTS.liveness.heartbeatMs,
  );
  const deadAfterMs = positive(
    'liveness.deadAfterMs',
    given.deadAfterMs ?? DEFAULTS.liveness.deadAfterMs,
  );
  if (deadAfterMs <= heartbeatMs) {
    throw new ConfigurationError(
      `liveness.deadAfterMs (${deadAfterMs}) must exceed liveness.heartbeatMs (${heartbeatMs}): ` +
        'a live process would look dead between two heartbeats',
    );
  }
  return { heartbeatMs, deadAfterMs };
}

export function resolveOptions(input: LayerOptions = {}): ResolvedOptions {
  if (input === null || typeof input !== 'object')
    throw new ConfigurationError('options must be an object');
  refuseUnknownKeys(input);
  const hosts = input.hosts ?? [...DEFAULTS.hosts];
  if (!Array.isArray(hosts)) {
    throw new ConfigurationError('hosts must be a list of Redis hosts, even if there is only one');
  }
  if (hosts.length === 0) throw new ConfigurationError('hosts must not be empty');
  // A cluster places keys by its own slots; mixing it with other hosts would place them twice.
  if (hosts.length > 1 && hosts.some(isClusterHost)) {
    throw new ConfigurationError(
      `a { cluster } entry must be the only entry of hosts (got ${hosts.length} entries)`,
    );
  }
  const keys = input.symmetricEncryptionKeys;
  const sharding = input.sharding ?? DEFAULTS.sharding;
  if (sharding !== 'crc32' && sharding !== 'ring') {
    throw new ConfigurationError(`Unknown sharding "${String(sharding)}" (known: crc32, ring)`);
  }
  const normalChannelSharding = input.normalChannelSharding ?? 'name';
  if (normalChannelSharding !== 'name' && normalChannelSharding !== 'round-robin') {
    throw new ConfigurationError(
      `Unknown normalChannelSharding "${String(normalChannelSharding)}" (known: name, round-robin)`,
    );
  }
  const clusterPubSub = input.clusterPubSub ?? 'sharded';
  if (clusterPubSub !== 'sharded' && clusterPubSub !== 'global') {
    throw new ConfigurationError(
      `Unknown clusterPubSub ${shown(clusterPubSub)} (known: "sharded", "global")`,
    );
  }
  const prefix = input.prefix ?? DEFAULTS.prefix;
  if (typeof prefix !== 'string') throw new ConfigurationError('prefix must be a string');
  // On a cluster, a brace in the prefix would be read as a hash tag: every key in one slot, and
  // the reader's wake keys (hash-tagged to a queue's slot) placed elsewhere.
  if (isClusterHost(hosts[0]) && /[{}]/.test(prefix)) {
    throw new ConfigurationError(
      `prefix ${shown(prefix)} must not contain { or } on a Redis Cluster`,
    );
  }
  const serializerFormat = input.serializerFormat ?? DEFAULTS.serializerFormat;
  if (typeof serializerFormat !== 'string')
    throw new ConfigurationError('serializerFormat must be a string');
  const randomPrefixLength = input.randomPrefixLength ?? DEFAULTS.randomPrefixLength;
  if (!Number.isInteger(randomPrefixLength) || randomPrefixLength < 0) {
    throw new ConfigurationError(
      `randomPrefixLength must be a non-negative integer, got ${randomPrefixLength}`,
    );
  }
  return {
    hosts,
    prefix,
    expiryMs: positive('expiry', input.expiry ?? DEFAULTS.expiry) * 1000,
    groupExpiryMs: positive('groupExpiry', input.groupExpiry ?? DEFAULTS.groupExpiry) * 1000,
    capacity: positive('capacity', input.capacity ?? DEFAULTS.capacity, { integer: true }),
    capacityRules: compileCapacities(input.channelCapacity),
    // An empty list means no encryption, as in channels_redis; createCrypter checks the rest.
    symmetricEncryptionKeys:
      Array.isArray(keys) && keys.length === 0 ? undefined : (keys ?? undefined),
    encryption: input.encryption ?? DEFAULTS.encryption,
    randomPrefixLength,
    serializerFormat,
    maxMessageBytes: positive(
      'maxMessageBytes',
      input.maxMessageBytes ?? DEFAULTS.maxMessageBytes,
      {
        integer: true,
      },
    ),
    sharding,
    normalChannelSharding,
    clusterPubSub,
    commandTimeoutMs: positive(
      'commandTimeoutMs',
      input.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs,
      {
        integer: true,
      },
    ),
    fernetTtlSlack: nonNegative('fernetTtlSlack', input.fernetTtlSlack ?? DEFAULTS.fernetTtlSlack),
    liveness: resolveLiveness(input.liveness),
  };
}

export function capacityFor(opts: ResolvedOptions, channel: string): number {
  for (const [re, cap] of opts.capacityRules) if (re.test(channel)) return cap;
  return opts.capacity;
}

/** Django's snake_case spelling → ours, for the layer options and a Sentinel host's keys. */
const SNAKE_KEYS: Record<string, string> = Object.fromEntries(
  [...OPTION_NAMES, ...LIVENESS_NAMES, 'masterName', 'sentinelKwargs'].map((name) => [
    snakeCase(name),
    name,
  ]),
);

function camelKeys(obj: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[SNAKE_KEYS[k] ?? k] = v;
  return out;
}

/** A Django `CONFIG` dict (possibly parsed from JSON) → LayerOptions. */
export function fromDjangoConfig(config: Record<string, unknown>): LayerOptions {
  const opts = camelKeys(config);
  if (Array.isArray(opts.hosts)) {
    opts.hosts = opts.hosts.map((entry: unknown) => {
      // Django's `("localhost", 6379)` arrives from JSON as a two-element array.
      if (Array.isArray(entry)) return `redis://${entry[0]}:${entry[1] ?? 6379}`;
      if (entry !== null && typeof entry === 'object')
        return camelKeys(entry as Record<string, unknown>);
      return entry;
    });
  }
  if (opts.liveness !== null && typeof opts.liveness === 'object' && !Array.isArray(opts.liveness))
    opts.liveness = camelKeys(opts.liveness as Record<string, unknown>);
  return opts as LayerOptions;
}
