/**
 * Commands written into a connection's socket at once, past ioredis's auto-pipeline (which
 * costs a Pipeline object, a setImmediate hop and a copy of the arguments per batch) — but only
 * while no auto-pipelined command issued earlier is queued or awaiting its replies: that one
 * must reach Redis first, a script meeting NOSCRIPT included, which ioredis sends again a round
 * trip later. Reads two private fields of ioredis 5.11 (pinned); without them, never direct.
 */
import type { Command, Redis } from 'ioredis';

interface AutoPipelineState {
  _autoPipelines?: Map<string, unknown>;
  _runningAutoPipelines?: Set<string>;
}

/** Writes `commands` in one corked write and returns true, or returns false (nothing sent). */
export function writeDirect(client: Redis, commands: readonly Command[]): boolean {
  const state = client as unknown as AutoPipelineState;
  if (state._autoPipelines?.size !== 0 || state._runningAutoPipelines?.size !== 0) return false;
  const socket = client.stream;
  socket.cork();
  try {
    for (const command of commands) void client.sendCommand(command);
  } finally {
    socket.uncork();
  }
  return true;
}
