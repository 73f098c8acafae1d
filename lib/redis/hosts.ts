/**
 * `hosts` entries → ioredis options, one shard each: a URL (`redis://`, `rediss://` for TLS,
 * user/password/db in the URL), `{ address, …ioredis options }`, or a Sentinel group
 * `{ sentinels, masterName, … }`. A Redis Cluster entry `{ cluster, … }` → a ClusterSpec.
 */
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { isClusterHost, type ClusterHost, type HostEntry, type SentinelHost } from '../config.ts';
import { ConfigurationError } from '../errors.ts';

/** Default bound for one question to a sentinel (`sentinelCommandTimeout` overrides it). */
const SENTINEL_COMMAND_TIMEOUT_MS = 2000;

export interface ShardSpec {
  /** Stable identity for the hash ring: the address or Sentinel master, without secrets. */
  id: string;
  /** ioredis options (a URL, when given, is in `url`). */
  url: string | undefined;
  options: RedisOptions;
}

/** A Redis Cluster: where to start discovering it, and the ioredis `Cluster` options. */
export interface ClusterSpec {
  /** The startup nodes, without secrets. */
  id: string;
  startupNodes: Array<{ host: string; port: number }>;
  /** ioredis ClusterOptions; what every node connection needs (auth, TLS) is in `redisOptions`. */
  options: ClusterOptions;
}

function checkUrl(address: unknown, where: string): string {
  if (typeof address !== 'string')
    throw new ConfigurationError(`${where} must be a redis:// URL string`);
  let parsed: URL;
  try {
    parsed = new URL(address);
  } catch {
    throw new ConfigurationError(`${where} is not a valid URL: ${address}`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigurationError(`${where} must use redis:// or rediss://, got ${parsed.protocol}`);
  }
  return address;
}

function urlId(address: string): string {
  const u = new URL(address);
  return `${u.protocol}//${u.hostname}:${u.port || 6379}${u.pathname === '/' ? '' : u.pathname}`;
}

function sentinelPairs(value: unknown, where: string): Array<{ host: string; port: number }> {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ConfigurationError(`${where}.sentinels must be a non-empty list of [host, port]`);
  }
  return value.map((s: unknown) => {
    if (Array.isArray(s) && typeof s[0] === 'string')
      return { host: s[0], port: Number(s[1] ?? 26379) };
    if (s && typeof s === 'object' && typeof (s as { host?: unknown }).host === 'string') {
      const { host, port } = s as { host: string; port?: number };
      return { host, port: Number(port ?? 26379) };
    }
    throw new ConfigurationError(`${where}.sentinels entries must be [host, port]`);
  });
}

/**
 * ioredis's `keyPrefix` would prefix most keys but not all the layer handles (SCAN patterns,
 * commands written directly): one namespace, the layer's `prefix`, is the supported one.
 */
function refuseKeyPrefix(options: object, where: string): void {
  if ('keyPrefix' in options) {
    throw new ConfigurationError(
      `${where}.keyPrefix is not supported: use the layer's \`prefix\` option (default "asgi:")`,
    );
  }
}

/** Options ioredis applies per node connection, lifted from the entry into `redisOptions`. */
const NODE_OPTIONS = ['username', 'password', 'tls'] as const;

function clusterNode(node: unknown, where: string): { host: string; port: number; url?: URL } {
  if (Array.isArray(node) && node.length >= 1 && node.length <= 2) {
    const [host, port = 6379] = node as [unknown, unknown];
    if (typeof host === 'string' && host !== '' && isPort(port)) return { host, port };
  } else if (typeof node === 'string') {
    const url = new URL(checkUrl(node, where));
    if (url.pathname !== '' && url.pathname !== '/' && url.pathname !== '/0') {
      throw new ConfigurationError(`${where}: Redis Cluster has only database 0, got ${node}`);
    }
    // WHATWG URL keeps the brackets of an IPv6 host; ioredis wants the bare address.
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379), url };
  }
  throw new ConfigurationError(
    `${where} must be [host, port] or a redis:// URL, got ${JSON.stringify(node)}`,
  );
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value < 65536;
}

/**
 * `{ cluster: [[host, port] | URL, …], username?, password?, tls?, …ClusterOptions }`. Node
 * options (`username`, `password`, `tls`; or credentials and `rediss:` in the URLs, which must
 * then agree) go into `redisOptions`, so nodes found by discovery get them too, not just the
 * startup nodes.
 */
/** `hosts`' Redis Cluster, when it is one (a `{ cluster }` entry, the only one), else undefined. */
export function clusterOf(hosts: readonly HostEntry[]): ClusterSpec | undefined {
  const [first] = hosts;
  return hosts.length === 1 && isClusterHost(first) ? parseCluster(first) : undefined;
}

export function parseCluster(entry: ClusterHost, where = 'hosts[0]'): ClusterSpec {
  const { cluster, db, redisOptions, ...rest } = entry;
  if (!Array.isArray(cluster) || cluster.length === 0) {
    throw new ConfigurationError(
      `${where}.cluster must be a non-empty list of [host, port] or redis:// URLs`,
    );
  }
  if (db !== undefined && db !== 0) {
    throw new ConfigurationError(`${where}.db: Redis Cluster has only database 0, got ${db}`);
  }
  if (redisOptions !== undefined && (typeof redisOptions !== 'object' || redisOptions === null)) {
    throw new ConfigurationError(`${where}.redisOptions must be an object of ioredis options`);
  }
  refuseKeyPrefix(rest, where);
  refuseKeyPrefix(redisOptions ?? {}, `${where}.redisOptions`);
  const nodes = cluster.map((n, j) => clusterNode(n, `${where}.cluster[${j}]`));

  const node: RedisOptions = { ...(redisOptions as RedisOptions | undefined) };
  for (const name of NODE_OPTIONS) {
    if (rest[name] !== undefined) node[name] = rest[name] as never;
    delete rest[name];
  }
  // What the URLs say must be one setting for the whole cluster, and match the explicit one.
  const fromUrls = (what: string, pick: (u: URL) => string | undefined): string | undefined => {
    const values = new Set(nodes.filter((n) => n.url).map((n) => pick(n.url!)));
    if (values.size > 1) {
      throw new ConfigurationError(`${where}.cluster: the URLs disagree on the ${what}`);
    }
    return [...values][0];
  };
  const urlUser = fromUrls('username', (u) => decodeURIComponent(u.username) || undefined);
  const urlPassword = fromUrls('password', (u) => decodeURIComponent(u.password) || undefined);
  const urlTls = fromUrls('scheme', (u) => u.protocol);
  for (const [name, value] of [
    ['username', urlUser],
    ['password', urlPassword],
  ] as const) {
    if (value === undefined) continue;
    if (node[name] !== undefined && node[name] !== value) {
      throw new ConfigurationError(`${where}: ${name} in the URLs and in the entry disagree`);
    }
    node[name] = value;
  }
  if (urlTls === 'rediss:') node.tls ??= {};

  return {
    id: `cluster:${nodes.map((n) => `${n.host}:${n.port}`).join(',')}`,
    startupNodes: nodes.map(({ host, port }) => ({ host, port })),
    options: { ...(rest as ClusterOptions), redisOptions: node },
  };
}

export function parseHost(entry: HostEntry, i: number): ShardSpec {
  const where = `hosts[${i}]`;
  if (typeof entry === 'string') {
    return { id: urlId(checkUrl(entry, where)), url: entry, options: {} };
  }
  if (entry === null || typeof entry !== 'object') {
    throw new ConfigurationError(`${where} must be a URL string or an object`);
  }
  if (isClusterHost(entry)) {
    // A cluster is a shard set of its own (cluster-shards.ts), never one shard of several.
    parseCluster(entry, where);
    throw new ConfigurationError(`${where}: a { cluster } entry must be the only entry of hosts`);
  }
  if ('sentinels' in entry) {
    const { sentinels, masterName, sentinelKwargs, db, ...rest } = entry as SentinelHost;
    if (typeof masterName !== 'string' || masterName === '') {
      throw new ConfigurationError(`${where}.masterName is required for a Sentinel group`);
    }
    const pairs = sentinelPairs(sentinels, where);
    refuseKeyPrefix(rest, where);
    return {
      id: `sentinel:${masterName}@${pairs.map((p) => `${p.host}:${p.port}`).join(',')}/${db ?? 0}`,
      url: undefined,
      options: {
        // A sentinel that accepts connections but never answers must not stall finding the
        // master (ioredis has no timeout for sentinel commands by default).
        sentinelCommandTimeout: SENTINEL_COMMAND_TIMEOUT_MS,
        ...(rest as RedisOptions),
        sentinels: pairs,
        name: masterName,
        db: db ?? 0,
        sentinelUsername: sentinelKwargs?.username,
        sentinelPassword: sentinelKwargs?.password,
        // +switch-master is followed by the shard's SentinelWatch (one set of sentinel
        // connections per shard, and it also wakes connections waiting out a reconnect
        // backoff), not by ioredis's per-connection failoverDetector.
        failoverDetector: false,
      },
    };
  }
  if ('address' in entry) {
    const { address, ...rest } = entry;
    refuseKeyPrefix(rest, where);
    return {
      id: urlId(checkUrl(address, `${where}.address`)),
      url: address,
      options: rest as RedisOptions,
    };
  }
  throw new ConfigurationError(
    `${where} needs "address", "sentinels" + "masterName", or "cluster"`,
  );
}
