/**
 * Messages/s in and out, estimated from two snapshots — all a read-only observer can see:
 * - in = entries now in a queue that are newer than the newest entry of the last snapshot
 *   (ZCOUNT by score), or its whole depth for a queue that did not exist then;
 * - out = depth then + in − depth now (received, expired or trimmed).
 * A message sent and received between two snapshots is seen by neither, so both are lower
 * bounds: a queue whose consumer keeps up shows ~0 however busy it is. A group's rates are
 * those of its members' queues (which also carry direct sends to those channels): a group send
 * itself leaves no trace in the group's key.
 */
import { nonLocalName } from '../names.ts';
import type { Snapshot } from './snapshot.ts';

export interface Rate {
  in: number;
  out: number;
}

/** Per channel queue (non-local name): messages/s between `prev` and `cur`. */
export function queueRates(prev: Snapshot, cur: Snapshot): Map<string, Rate> {
  const seconds = Math.max(0.001, (cur.at - prev.at) / 1000);
  const counts = new Map<string, Rate>();
  const add = (channel: string, inCount: number, outCount: number): void => {
    const r = counts.get(channel) ?? { in: 0, out: 0 };
    r.in += inCount;
    r.out += Math.max(0, outCount);
    counts.set(channel, r);
  };
  for (const [id, now] of cur.samples) {
    const then = prev.samples.get(id);
    if (then === undefined) add(now.channel, now.depth, 0);
    else {
      const arrived = now.arrived ?? 0;
      add(now.channel, arrived, then.depth + arrived - now.depth);
    }
  }
  for (const [id, then] of prev.samples) {
    if (!cur.samples.has(id)) add(then.channel, 0, then.depth);
  }
  for (const r of counts.values()) {
    r.in /= seconds;
    r.out /= seconds;
  }
  return counts;
}

/** Per group: the sum over the distinct queues of its live members. */
export function groupRates(cur: Snapshot, queues: ReadonlyMap<string, Rate>): Map<string, Rate> {
  const out = new Map<string, Rate>();
  for (const [group, members] of cur.members) {
    const sum = { in: 0, out: 0 };
    for (const name of new Set(members.map(nonLocalName))) {
      const r = queues.get(name);
      if (r) {
        sum.in += r.in;
        sum.out += r.out;
      }
    }
    out.set(group, sum);
  }
  return out;
}
