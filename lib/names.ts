/**
 * Channel and group name rules, identical to Django Channels' (ASCII only, length < 100).
 * A process-specific channel is `name!local`; its non-local name is everything up to and
 * including the `!`, and that is what a Redis key and a shard are derived from.
 */
import { randomUUID } from 'node:crypto';
import { InvalidChannelName, InvalidGroupName, WrongClientPrefix } from './errors.ts';

export const MAX_NAME_LENGTH = 100;
const CHANNEL_RE = /^[a-zA-Z\d\-_.]+(![\w\-.]*)?$/;
const GROUP_RE = /^[a-zA-Z\d\-_.]+$/;

export function assertChannelName(channel: unknown): asserts channel is string {
  if (typeof channel !== 'string') throw new InvalidChannelName(channel, 'not a string');
  if (channel.length >= MAX_NAME_LENGTH) {
    throw new InvalidChannelName(channel, `length must be < ${MAX_NAME_LENGTH}`);
  }
  if (!CHANNEL_RE.test(channel)) {
    throw new InvalidChannelName(channel, 'only ASCII letters, digits, "-", "_", "." and one "!"');
  }
}

export function assertGroupName(group: unknown): asserts group is string {
  if (typeof group !== 'string') throw new InvalidGroupName(group, 'not a string');
  if (group.length >= MAX_NAME_LENGTH) {
    throw new InvalidGroupName(group, `length must be < ${MAX_NAME_LENGTH}`);
  }
  if (!GROUP_RE.test(group)) {
    throw new InvalidGroupName(group, 'only ASCII letters, digits, "-", "_" and "."');
  }
}

export function isProcessLocal(channel: string): boolean {
  return channel.includes('!');
}

/** `specific.abc!xyz` → `specific.abc!`; a normal channel is its own non-local name. */
export function nonLocalName(channel: string): string {
  const bang = channel.indexOf('!');
  return bang === -1 ? channel : channel.slice(0, bang + 1);
}

/** A uuid4 as 32 hex digits, as Python's `uuid4().hex`. */
export function uuidHex(): string {
  return randomUUID().replaceAll('-', '');
}

/** Core and in-memory `newChannel`: `${prefix}.${clientPrefix}!${uuidHex}` (channels_redis). */
export function newProcessChannel(prefix: string, clientPrefix: string): string {
  const channel = `${prefix}.${clientPrefix}!${uuidHex()}`;
  assertChannelName(channel);
  return channel;
}

/** A layer only receives the `…!` channels it created (their non-local name ends `clientPrefix!`). */
export function assertOwnChannel(channel: string, clientPrefix: string): void {
  if (isProcessLocal(channel) && !nonLocalName(channel).endsWith(`${clientPrefix}!`)) {
    throw new WrongClientPrefix(channel, `client prefix ${clientPrefix}`);
  }
}

/**
 * Whether `channel`'s non-local name is `name`, itself a non-local name (without slicing: called
 * per group member). A `…!` name's only '!' is its last character, so a channel starting with
 * it has its first '!' there too.
 */
export function sharesQueue(channel: string, name: string): boolean {
  return name.endsWith('!') ? channel.startsWith(name) : channel === name;
}
