/**
 * A failed command as the error its caller gets: one that names the place (a shard, a cluster
 * slot) and says what is known — it timed out, it was lost in flight (it may or may not have
 * run), there is no connection, a failover is under way. Redis's own replies pass through.
 * ioredis errors carry no codes: their texts are kept in ioredis-internals.ts.
 */
import { ConnectionError, errorMessage } from '../errors.ts';
import { ERROR_TEXT } from './ioredis-internals.ts';

export interface FailurePlace {
  /** "Redis 127.0.0.1:6379 (shard 0)", say. */
  where: string;
  /** The shard's index in `hosts` (ConnectionError.shard). */
  index: number;
  commandTimeoutMs: number;
  /** The command, as the message names it ("the PUBLISH"). */
  command: string;
  /** The error for "cannot be reached", with the last connection failure known. */
  unreachable(detail: string): ConnectionError;
}

export function explainFailure(err: unknown, place: FailurePlace): unknown {
  if (err instanceof ConnectionError) return err;
  const message = errorMessage(err);
  const lost = (what: string): ConnectionError =>
    new ConnectionError(`${place.where} ${what}`, place.index, { cause: err });
  if (message === ERROR_TEXT.commandTimeout) {
    return lost(`did not answer within ${place.commandTimeoutMs} ms`);
  }
  if (message.includes(ERROR_TEXT.maxRetries) || message.startsWith(ERROR_TEXT.connectionClosed)) {
    return lost(
      `lost its connection while ${place.command} was in flight (it may or may not have run)`,
    );
  }
  if (message.includes(ERROR_TEXT.notWritable) || message.startsWith(ERROR_TEXT.clusterNotReady)) {
    return place.unreachable('not connected');
  }
  if (message.startsWith('READONLY')) {
    // A replica refuses the first write, so nothing was written; the connection is being
    // dropped to find the master again (reconnectOnError).
    return lost('is a replica now (READONLY: a failover is under way); nothing was written');
  }
  if (message.startsWith('CLUSTERDOWN')) {
    return lost(
      'has no master for now (CLUSTERDOWN: a failover is under way); nothing was written',
    );
  }
  if (message.startsWith(ERROR_TEXT.clusterRedirections)) {
    // Moved, asked and retried until ioredis gave up: the slot is between owners.
    return lost(`did not settle on a master for the key (${message})`);
  }
  return err;
}
