/**
 * PUBLISH on a shard's command connection, written at once and batched per turn of the event
 * loop: each publish is one ioredis Command written into the socket corked for the turn
 * (turn-cork.ts), so every PUBLISH of a turn leaves in one writev.
 *
 * ioredis's auto-pipelining, which the connection has for its other commands, costs a Pub/Sub
 * hop more than the write itself: it defers every command to `setImmediate`, builds a Pipeline
 * per batch, holds a batch until the previous batch's replies are in, and settles each reply
 * through a nextTick callback and two more promises.
 */
import { Command, type Redis } from 'ioredis';
import { socketOf } from './ioredis-internals.ts';
import { corkForTurn } from './turn-cork.ts';

export class Publisher {
  constructor(private readonly client: Redis) {}

  /**
   * Resolves with Redis's reply (receivers reached) or rejects as the command would through
   * `client.publish` (failFast: no offline queue; `commandTimeout` applies).
   */
  publish(name: string, payload: Buffer): Promise<unknown> {
    corkForTurn(socketOf(this.client));
    const command = new Command('publish', [name, payload]);
    void this.client.sendCommand(command);
    return command.promise;
  }
}
