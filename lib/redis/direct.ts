/**
 * Commands written into a connection's socket at once, past ioredis's auto-pipeline (which
 * costs a Pipeline object, a setImmediate hop and a copy of the arguments per batch) — but only
 * while no auto-pipelined command issued earlier is queued or awaiting its replies: that one
 * must reach Redis first, a script meeting NOSCRIPT included, which ioredis sends again a round
 * trip later. The auto-pipeline's state and the socket are ioredis internals (ioredis-internals.ts);
 * without them, never direct.
 */
import { Redis, type Command } from 'ioredis';
import { autoPipelineIdle, socketOf } from './ioredis-internals.ts';

/** Writes `commands` in one corked write and returns true, or returns false (nothing sent). */
export function writeDirect(client: Redis, commands: readonly Command[]): boolean {
  // A Cluster client (cluster-shards.ts) routes each command to its node: never direct.
  if (!(client instanceof Redis)) return false;
  const socket = socketOf(client);
  if (!socket || !autoPipelineIdle(client)) return false;
  socket.cork();
  try {
    for (const command of commands) void client.sendCommand(command);
  } finally {
    socket.uncork();
  }
  return true;
}
