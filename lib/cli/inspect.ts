/**
 * `chanlayer inspect`: one snapshot of every shard, as text or (`--json`) exactly
 * `{ groups: [{ name, members }], queues: [{ channel, depth, oldestAgeMs }],
 * processes: [{ client, alive, lastSeenMs }] }`. Exit status 1 when a shard could not be read
 * (what could be read is still printed; the reasons go to stderr).
 */
import type { Shard } from '../redis/shard.ts';
import type { CliOptions } from './args.ts';
import { openShards, registryShards } from './connect.ts';
import { renderInspect } from './render.ts';
import { takeSnapshot, type Snapshot, type SnapshotOptions } from './snapshot.ts';

export function snapshotOptions(opts: CliOptions, shards: readonly Shard[]): SnapshotOptions {
  return {
    prefix: opts.prefix,
    groupExpiryMs: opts.groupExpiryMs,
    deadAfterMs: opts.deadAfterMs,
    limit: opts.limit,
    registryShards: registryShards(opts, shards),
  };
}

/** Just the documented JSON shape (the snapshot holds more, for top). */
export function toJson(snapshot: Snapshot): string {
  return JSON.stringify(
    {
      groups: snapshot.groups.map(({ name, members }) => ({ name, members })),
      queues: snapshot.queues.map(({ channel, depth, oldestAgeMs }) => ({
        channel,
        depth,
        oldestAgeMs,
      })),
      processes: snapshot.processes.map(({ client, alive, lastSeenMs }) => ({
        client,
        alive,
        lastSeenMs,
      })),
    },
    null,
    2,
  );
}

export async function inspect(opts: CliOptions, width: number): Promise<number> {
  const shards = await openShards(opts);
  try {
    const snapshot = await takeSnapshot(shards, snapshotOptions(opts, shards));
    process.stdout.write(`${opts.json ? toJson(snapshot) : renderInspect(snapshot, width)}\n`);
    for (const s of snapshot.shards) {
      if (s.truncated) {
        process.stderr.write(
          `chanlayer: shard ${s.shard}: stopped after ${s.scanned} keys (--limit)\n`,
        );
      }
      if (s.error !== undefined) process.stderr.write(`chanlayer: shard ${s.shard}: ${s.error}\n`);
    }
    return snapshot.shards.every((s) => s.ok) ? 0 : 1;
  } finally {
    for (const shard of shards) shard.close();
  }
}
