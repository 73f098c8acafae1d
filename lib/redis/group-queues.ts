/**
 * A group's members (channel names as Redis returned them, UTF-8 bytes) by the queue they share:
 * one group message per channel key, naming every member there (docs/wire-protocol.md). Kept as
 * bytes: they go into the message as they are (Codec.groupEncoder), so 1,000s of names are never
 * made into strings and encoded back.
 */

import { isUtf8 } from 'node:buffer';

const BANG = 0x21; // '!'

/** Whether `channel`'s non-local name is `name` (both as bytes). */
function inQueue(channel: Buffer, name: Buffer): boolean {
  const n = name.length;
  // `name` is up to and including the first '!', so an equal prefix has its first '!' last.
  if (name[n - 1] === BANG ? channel.length < n : channel.length !== n) return false;
  return channel.compare(name, 0, n, 0, n) === 0;
}

/** Non-local name → its member channels, in member order (and first-seen order of names). */
export function groupQueues(members: readonly Buffer[]): Map<string, Buffer[]> {
  const queues = new Map<string, Buffer[]>();
  // Members of one process's `…!` queue tend to come in a row (joined together): try the
  // previous queue first, before building and hashing a name (1,000s of members).
  let lastName: Buffer | undefined;
  let last: Buffer[] | undefined;
  for (const channel of members) {
    // A name is written into the message as it is: bytes that are not UTF-8 (a raw write, not
    // a groupAdd) would make the whole message undecodable for channels_redis. Skipped.
    if (!isUtf8(channel)) continue;
    if (last !== undefined && inQueue(channel, lastName!)) {
      last.push(channel);
      continue;
    }
    const bang = channel.indexOf(BANG);
    lastName = bang === -1 ? channel : channel.subarray(0, bang + 1);
    const name = lastName.toString();
    last = queues.get(name);
    if (last) last.push(channel);
    else queues.set(name, (last = [channel]));
  }
  return queues;
}
