/**
 * The core layer's sends, batched per shard and per tick. Every send made in the same tick
 * (64 request handlers answering at once, say) goes out as one `send_many.lua` call: each
 * message keeps its own atomic capacity check, in order, and resolves (1 added, 0 full) or
 * rejects on its own. A lone send is still a plain `send.lua` call. A batch is written on
 * process.nextTick, so nothing waits for a timer or for I/O.
 *
 * In a batch, a key's messages travel packed into one string (see send_many.lua): building and
 * writing two or five arguments per message was most of the client's cost per send.
 */
import type { Redis } from 'ioredis';
import {
  PACKED_HEADER_BYTES,
  sendManyScript,
  sendScript,
  type KeySendOutcome,
  type SendManyKey,
} from './script-calls.ts';

/** Most sends per send_many.lua call. */
const SEND_BATCH = 128;
/**
 * Most packed bytes per call: a key's messages travel as one argument, which must stay under
 * the server's `proto-max-bulk-len` (1 MiB at the least) or Redis drops the connection. A
 * message that would cross it goes in the next call; one larger than it goes alone, as its
 * own argument (as it would without batching).
 */
const SEND_BATCH_BYTES = 1 << 20;

/** Runs `work` on shard `index`'s client (the layer's command path, with its error wording). */
export type RunOnShard = <T>(index: number, work: (client: Redis) => Promise<T>) => Promise<T>;

/** One key's messages of a batch, in send order. */
interface KeySends extends SendManyKey {
  resolves: Array<(added: number) => void>;
  rejects: Array<(err: unknown) => void>;
}

interface Batch {
  keys: Map<string, KeySends>;
  count: number;
  bytes: number;
}

export class SendBatcher {
  /** Per shard: the sends of this tick not yet written. */
  private readonly batches: Array<Batch | undefined> = [];

  constructor(
    private readonly run: RunOnShard,
    /** Key TTL in ms, given with every send. */
    private readonly ttlMs: number,
  ) {}

  /** Queues one send for shard `index`; resolves 1 (added) or 0 (channel full). */
  send(
    index: number,
    key: string,
    score: number,
    member: Buffer,
    capacity: number,
    expiredBefore: number,
  ): Promise<number> {
    let batch = this.batches[index];
    let sends = batch?.keys.get(key);
    const bytes = PACKED_HEADER_BYTES + member.length;
    if (
      batch !== undefined &&
      ((sends !== undefined && sends.capacity !== capacity) ||
        batch.bytes + bytes > SEND_BATCH_BYTES)
    ) {
      // Channels of one `…!` queue with different capacities (one capacity per key and call),
      // or a batch that would grow too large: what is queued goes first (in order, on the same
      // connection).
      this.flush(index, batch);
      batch = sends = undefined;
    }
    if (batch === undefined) {
      const fresh: Batch = { keys: new Map(), count: 0, bytes: 0 };
      this.batches[index] = batch = fresh;
      process.nextTick(() => this.flush(index, fresh));
    }
    if (sends === undefined) {
      sends = {
        queue: key,
        capacity,
        expiredBefore,
        scores: [],
        members: [],
        bytes: 0,
        resolves: [],
        rejects: [],
      };
      batch.keys.set(key, sends);
    }
    sends.scores.push(score);
    sends.members.push(member);
    sends.bytes += bytes;
    batch.bytes += bytes;
    const into = sends;
    const promise = new Promise<number>((resolve, reject) => {
      into.resolves.push(resolve);
      into.rejects.push(reject);
    });
    if (++batch.count >= SEND_BATCH) this.flush(index, batch);
    return promise;
  }

  private flush(index: number, batch: Batch): void {
    if (this.batches[index] !== batch) return; // already written (full batch)
    this.batches[index] = undefined;
    const perKey = [...batch.keys.values()];
    this.write(index, perKey, batch.count).then(
      (added) =>
        perKey.forEach((sends, j) => {
          const outcome = added[j]!;
          if (typeof outcome !== 'number') {
            for (const reject of sends.rejects) reject(outcome);
          } else sends.resolves.forEach((resolve, i) => resolve(i < outcome ? 1 : 0));
        }),
      (err: unknown) => {
        for (const sends of perKey) for (const reject of sends.rejects) reject(err);
      },
    );
  }

  /** One script call for the batch; per key, how many of its messages were added. */
  private async write(index: number, perKey: KeySends[], count: number): Promise<KeySendOutcome[]> {
    if (count > 1) return this.run(index, (client) => sendManyScript(client, this.ttlMs, perKey));
    const sends = perKey[0]!;
    const added = await this.run(index, (client) =>
      sendScript(client, {
        queue: sends.queue,
        score: sends.scores[0]!,
        member: sends.members[0]!,
        capacity: sends.capacity,
        expiredBefore: sends.expiredBefore,
        ttlMs: this.ttlMs,
      }),
    );
    return [added];
  }
}
