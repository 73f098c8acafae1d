/** Errors chanlayer reports. Every class is exported so callers can `instanceof` them. */

/** The message of anything thrown (not re-exported: for chanlayer's own reports). */
export function errorMessage(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

/** `send` found the channel at capacity; the message was not written. */
export class ChannelFull extends Error {
  override name = 'ChannelFull';
  constructor(
    readonly channel: string,
    readonly capacity: number,
  ) {
    super(`Channel ${channel} is full (capacity ${capacity})`);
  }
}

/** The encoded message is larger than `maxMessageBytes`. */
export class MessageTooLarge extends Error {
  override name = 'MessageTooLarge';
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`Message of ${size} bytes exceeds maxMessageBytes (${limit})`);
  }
}

/** A name for an error message. JSON.stringify alone throws on a bigint and drops a symbol. */
function showName(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return Object.prototype.toString.call(value);
  return typeof value === 'function' ? 'a function' : `${String(value)} (${typeof value})`;
}

export class InvalidChannelName extends TypeError {
  override name = 'InvalidChannelName';
  constructor(
    readonly channel: unknown,
    reason: string,
  ) {
    super(`Invalid channel name ${showName(channel)}: ${reason}`);
  }
}

export class InvalidGroupName extends TypeError {
  override name = 'InvalidGroupName';
  constructor(
    readonly group: unknown,
    reason: string,
  ) {
    super(`Invalid group name ${showName(group)}: ${reason}`);
  }
}

/** Any method called after `close()`. */
export class LayerClosed extends Error {
  override name = 'LayerClosed';
  constructor(layer: string) {
    super(`${layer} is closed`);
  }
}

/**
 * `receive` on a process-local (`…!`) channel this layer did not create: only the process that
 * made it can read it (its messages go to that process's queue or subscription).
 */
export class WrongClientPrefix extends Error {
  override name = 'WrongClientPrefix';
  constructor(
    readonly channel: string,
    detail: string,
  ) {
    super(`Wrong client prefix: ${channel} was not created by this layer (${detail})`);
  }
}

/** Bad options given to a constructor, `fromConfig` or `configure()`. Thrown synchronously. */
export class ConfigurationError extends Error {
  override name = 'ConfigurationError';
}

/**
 * A channel's key holds something other than a sorted set (written there by something else):
 * the message was not written to it; other keys of the same call were.
 */
export class NotAChannelQueue extends Error {
  override name = 'NotAChannelQueue';
  constructor(
    readonly key: string,
    what: string,
  ) {
    super(
      `${key} holds a Redis value that is not a channel queue (a sorted set); ${what} was not written`,
    );
  }
}

/**
 * A Redis shard could not be reached in time, or the connection was lost under a command. The
 * message names the shard and the server's or socket's own reason; `cause` is that error.
 */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
  constructor(
    message: string,
    /** The shard's index in `hosts`. */
    readonly shard: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Redis refused the credentials (`WRONGPASS`, `NOAUTH`): no retry will fix it. */
export class AuthenticationError extends ConnectionError {
  override name = 'AuthenticationError';
}

/** The Redis server is older than chanlayer needs (5.0, for BZPOPMIN). */
export class RedisTooOld extends Error {
  override name = 'RedisTooOld';
}

/**
 * A group's key holds something other than a sorted set of channel names (written there by
 * something else): the group operation read and wrote nothing.
 */
export class NotAGroup extends Error {
  override name = 'NotAGroup';
  constructor(
    readonly group: string,
    readonly key: string,
  ) {
    super(
      `Group ${group}: ${key} holds a Redis value that is not a group (a sorted set of channel names); nothing was read or written`,
    );
  }
}

/** A payload read from Redis could not be decoded (corrupt, foreign key, expired token). */
export class UnreadablePayload extends Error {
  override name = 'UnreadablePayload';
}

/** The error a receive rejects with when its signal aborts without a reason of its own. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}
