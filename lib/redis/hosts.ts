/**
 * `hosts` entries → ioredis options, one shard each: a URL (`redis://`, `rediss://` for TLS,
 * user/password/db in the URL), `{ address, …ioredis options }`, or a Sentinel group
 * `{ sentinels, masterName, … }`.
 */
import type { RedisOptions } from 'ioredis';
import type { HostEntry, SentinelHost } from '../config.ts';
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

export function parseHost(entry: HostEntry, i: number): ShardSpec {
  const where = `hosts[${i}]`;
  if (typeof entry === 'string') {
    return { id: urlId(checkUrl(entry, where)), url: entry, options: {} };
  }
  if (entry === null || typeof entry !== 'object') {
    throw new ConfigurationError(`${where} must be a URL string or an object`);
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
  throw new ConfigurationError(`${where} needs "address" or "sentinels" + "masterName"`);
}
