/**
 * The core layer's groups: membership (`groupAdd`/`groupDiscard`, a sorted set per group scored
 * by the add time, channels_redis's format) and the fan-out of `groupSend`:
 *
 * 1. read the group's live members and trim the expired ones, in one write (readMembers);
 * 2. group the members by the queue they share (group-queues.ts: one process's `…!` channels
 *    share one key), so one message per queue names all its members (`__asgi_channel__`);
 * 3. per shard, in chunks of GROUP_SEND_CHUNK queues, one group_send.lua call: a capacity-checked
 *    ZADD per queue; full queues and foreign keys come back by index.
 *
 * A queue of a process known dead (liveness.ts) gets nothing; its channels are removed from the
 * group by a ZREM sent with the group message (no round trip of its own).
 */
import { Command, type Redis } from 'ioredis';
import type { ResolvedOptions } from '../config.ts';
import { errorMessage, NotAChannelQueue, NotAGroup } from '../errors.ts';
import type { CounterName } from '../layers/base.ts';
import { nonLocalName } from '../names.ts';
import { writeDirect } from './direct.ts';
import { groupQueues } from './group-queues.ts';
import { groupAddScript, groupSendScript, type GroupSendQueue } from './script-calls.ts';
import { nextScore } from './send-time.ts';
import type { ShardSet } from './shard-set.ts';

/** Keys per group_send.lua call: bounds how long one call keeps Redis busy. */
const GROUP_SEND_CHUNK = 1000;

/** What the groups need from their layer. */
export interface GroupsContext {
  shards: ShardSet;
  options: ResolvedOptions;
  count(name: CounterName, by?: number): void;
  capacityFor(channel: string): number;
  report(err: unknown, context: string): void;
  /** Whether a queue (non-local name) belongs to a process known dead (liveness.ts). */
  isDeadQueue(name: string): boolean;
  /** Instrumentation (BaseLayer.observe): `groupFanOut` per send. */
  notify(event: 'groupFanOut', value: number): void;
}

/** One channel key a group message goes to, with the members sharing it (names as bytes). */
interface GroupQueue {
  key: string;
  channels: Buffer[];
}

/**
 * A group's members added after `expired` (names as bytes: see groupQueues), trimming the older
 * ones. The read skips expired memberships by score and the trim drops them; neither needs the
 * other to be atomic, so they are two plain commands in one write, not a script: a script
 * turning 1,000 names into Lua strings costs Redis ~0.3 ms, the plain read ~0.05–0.08 ms.
 * Written directly when it may be (writeDirect): the auto-pipeline's Map also kept each
 * 1,000-name reply alive until a full GC (see Mailboxes.vacate).
 */
function readMembers(client: Redis, key: string, expired: number): Promise<Buffer[]> {
  const min = `(${expired}`;
  const read = new Command('zrangebyscore', [key, min, '+inf']);
  const trim = new Command('zremrangebyscore', [key, '-inf', expired]);
  const replies = writeDirect(client, [read, trim])
    ? [read.promise as Promise<Buffer[]>, trim.promise]
    : [client.zrangebyscoreBuffer(key, min, '+inf'), client.zremrangebyscore(key, '-inf', expired)];
  return Promise.all(replies).then(([names]) => names as Buffer[]);
}

export class Groups {
  /**
   * channel → group → score of its groupAdd, for every membership this layer added (deleteChannel
   * leaves them; liveness puts them back after this process was given up as dead).
   */
  private readonly memberships = new Map<string, Map<string, number>>();

  constructor(private readonly ctx: GroupsContext) {}

  async add(group: string, channel: string): Promise<void> {
    const score = nextScore();
    await this.addMember(group, channel, score);
    let groups = this.memberships.get(channel);
    if (!groups) {
      groups = new Map();
      this.memberships.set(channel, groups);
    }
    groups.set(group, score);
  }

  /**
   * The group's live members: memberships not expired, of processes not known dead (channels of
   * processes that never registered always count).
   */
  async channels(group: string): Promise<string[]> {
    const expired = nextScore() - this.ctx.options.groupExpiryMs / 1000;
    const members = await this.onGroup(group, (client, key) =>
      client.zrangebyscore(key, `(${expired}`, '+inf'),
    );
    return members.filter((c) => !this.ctx.isDeadQueue(nonLocalName(c)));
  }

  /**
   * Puts back the memberships this layer added that are not expired, with their groupAdd score
   * (so they expire when they would have): this process had been given up as dead, so others
   * may have removed them. Counts the ones that were missing.
   */
  async restore(): Promise<void> {
    const expired = nextScore() - this.ctx.options.groupExpiryMs / 1000;
    const adds: Array<Promise<void>> = [];
    for (const [channel, groups] of this.memberships) {
      for (const [group, score] of groups) {
        if (score <= expired) continue;
        adds.push(
          this.addMember(group, channel, score).then(
            (added) => {
              if (added) this.ctx.count('membershipsRestored');
            },
            (err: unknown) => this.ctx.report(err, `restoring ${channel} in group ${group}`),
          ),
        );
      }
    }
    await Promise.all(adds);
  }

  async discard(group: string, channel: string): Promise<void> {
    await this.onGroup(group, (client, key) => client.zrem(key, channel));
    const groups = this.memberships.get(channel);
    if (groups?.delete(group) && groups.size === 0) this.memberships.delete(channel);
  }

  /** Leaves every group this layer added `channel` to (deleteChannel). */
  async leaveAll(channel: string): Promise<void> {
    const groups = [...(this.memberships.get(channel)?.keys() ?? [])];
    this.memberships.delete(channel);
    await Promise.all(
      groups.map((group) => this.onGroup(group, (client, key) => client.zrem(key, channel))),
    );
  }

  /** Forgets what this layer added (flush: the group keys are being deleted). */
  clear(): void {
    this.memberships.clear();
  }

  /**
   * Sends one message per member queue; `encodeFor` builds it for the members sharing a queue
   * (checked and encoded once: Codec.groupEncoder).
   */
  async send(group: string, encodeFor: (channels: Buffer[]) => Buffer): Promise<void> {
    const { shards, options } = this.ctx;
    const expired = nextScore() - options.groupExpiryMs / 1000;
    const members = await this.onGroup(group, (client, key) => readMembers(client, key, expired));
    if (members.length === 0) {
      this.ctx.notify('groupFanOut', 0);
      return;
    }

    const perShard = new Map<number, GroupQueue[]>();
    const dead: Buffer[] = [];
    for (const [name, channels] of groupQueues(members)) {
      if (this.ctx.isDeadQueue(name)) {
        dead.push(...channels);
        continue;
      }
      const key = options.prefix + name;
      const index = shards.index(name, key);
      const queue = { key, channels };
      const queues = perShard.get(index);
      if (queues) queues.push(queue);
      else perShard.set(index, [queue]);
    }
    // Live members only: a dead process's channels get nothing.
    this.ctx.notify('groupFanOut', members.length - dead.length);

    const score = nextScore();
    const args = {
      score,
      expiredBefore: score - options.expiryMs / 1000,
      ttlMs: Math.ceil(options.expiryMs),
    };
    const calls: Array<Promise<void>> = [];
    // Sent alongside the group message (no round trip of its own): see README "Operations".
    if (dead.length > 0) calls.push(this.removeDead(group, dead));
    for (const [index, queues] of perShard) {
      for (let start = 0; start < queues.length; start += GROUP_SEND_CHUNK) {
        const chunk = queues.slice(start, start + GROUP_SEND_CHUNK);
        const sends: GroupSendQueue[] = chunk.map((q) => ({
          queue: q.key,
          member: encodeFor(q.channels),
          capacity: this.ctx.capacityFor(q.channels[0]!.toString()),
        }));
        calls.push(
          shards
            .run(index, (client) => groupSendScript(client, args, sends))
            .then((outcomes) => this.counted(group, chunk, outcomes)),
        );
      }
    }
    const results = await Promise.allSettled(calls);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** The key of a group's members (channels_redis's name). */
  private key(group: string): string {
    return `${this.ctx.options.prefix}:group:${group}`;
  }

  private addMember(group: string, channel: string, score: number): Promise<boolean> {
    const ttlMs = Math.ceil(this.ctx.options.groupExpiryMs);
    return this.onGroup(group, (client, key) =>
      groupAddScript(client, { group: key, score, channel, ttlMs }),
    );
  }

  /** Removes the channels of dead processes from a group (counted by what Redis removed). */
  private removeDead(group: string, channels: Buffer[]): Promise<void> {
    return this.onGroup(group, (client, key) => client.zrem(key, ...channels)).then((n) =>
      this.ctx.count('deadRemoved', n),
    );
  }

  private counted(
    group: string,
    chunk: GroupQueue[],
    outcomes: Awaited<ReturnType<typeof groupSendScript>>,
  ): void {
    chunk.forEach((q, i) => {
      const outcome = outcomes[i]!;
      if (outcome instanceof NotAChannelQueue) {
        this.ctx.report(outcome, `group send to ${group}`);
      } else {
        this.ctx.count(outcome === 'full' ? 'groupDropped' : 'groupDeliveries', q.channels.length);
      }
    });
  }

  /**
   * Runs `work` on the group's key, on its shard. A key holding something other than a sorted
   * set refuses the first command with WRONGTYPE (nothing is written: each operation's first
   * command reads or writes the key): that is reported as NotAGroup, not as Redis's raw reply.
   */
  private onGroup<T>(group: string, work: (client: Redis, key: string) => Promise<T>): Promise<T> {
    const key = this.key(group);
    return this.ctx.shards.run(this.ctx.shards.index(group, key), (client) =>
      work(client, key).catch((err: unknown) => {
        throw /WRONGTYPE/.test(errorMessage(err)) ? new NotAGroup(group, key) : err;
      }),
    );
  }
}
