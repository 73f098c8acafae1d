/**
 * Batching writes per turn of the event loop: the first write of a turn corks its socket, and
 * every socket corked in the turn is uncorked on `process.nextTick` — after the promise
 * continuations of the current turn, so each command they issue (all the consumers one socket
 * read woke, say) leaves with the others in one writev per connection.
 */
import type { Socket } from './ioredis-internals.ts';

const corked = new Set<Socket>();

function uncorkAll(): void {
  for (const socket of corked) socket.uncork();
  corked.clear();
}

/** Corks `socket` until the next tick, once per turn (nothing if it is missing or not writable). */
export function corkForTurn(socket: Socket | undefined): void {
  if (socket === undefined || !socket.writable || corked.has(socket)) return;
  socket.cork();
  if (corked.size === 0) process.nextTick(uncorkAll);
  corked.add(socket);
}
