/**
 * PUBLISH on a shard's command connection, written at once and batched per turn of the event
 * loop: each publish is one ioredis Command written into the corked socket, and the socket is
 * uncorked on `process.nextTick` — after the promise continuations of the current turn, so
 * every PUBLISH they issue (all the consumers one socket read woke, say) leaves in one writev.
 *
 * ioredis's auto-pipelining, which the connection has for its other commands, costs a Pub/Sub
 * hop more than the write itself: it defers every command to `setImmediate`, builds a Pipeline
 * per batch, holds a batch until the previous batch's replies are in, and settles each reply
 * through a nextTick callback and two more promises.
 */
import { Command, type Redis } from 'ioredis';
import { socketOf, type Socket } from './ioredis-internals.ts';

export class Publisher {
  /** The socket corked in this turn, uncorked on the next tick. */
  private corked: Socket | undefined;
  private readonly uncork = (): void => {
    const socket = this.corked;
    this.corked = undefined;
    socket?.uncork();
  };

  constructor(private readonly client: Redis) {}

  /**
   * Resolves with Redis's reply (receivers reached) or rejects as the command would through
   * `client.publish` (failFast: no offline queue; `commandTimeout` applies).
   */
  publish(name: string, payload: Buffer): Promise<unknown> {
    const socket = socketOf(this.client);
    if (this.corked === undefined && socket?.writable) {
      socket.cork();
      this.corked = socket;
      process.nextTick(this.uncork);
    }
    const command = new Command('publish', [name, payload]);
    void this.client.sendCommand(command);
    return command.promise;
  }
}
