/**
 * Waiting for a client (a Redis connection, a Cluster) to become ready: its next 'ready', or its
 * 'end' (then "Connection is closed.", as ioredis says it), or `end()` called by its owner — a
 * client closed between reconnects emits no 'end'.
 */
import type { EventEmitter } from 'node:events';

export interface ReadyWait {
  readonly promise: Promise<void>;
  /** Rejects the wait now (the owner is closing). */
  end(): void;
}

export function nextReady(client: EventEmitter): ReadyWait {
  let end!: () => void;
  const promise = new Promise<void>((resolve, reject) => {
    const done = (): void => {
      client.off('ready', onReady);
      client.off('end', onEnd);
    };
    const onReady = (): void => {
      done();
      resolve();
    };
    const onEnd = (): void => {
      done();
      reject(new Error('Connection is closed.'));
    };
    client.on('ready', onReady);
    client.on('end', onEnd);
    end = onEnd;
  });
  return { promise, end };
}
