/** Closing: the waits close() cuts short. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Closing } from '../lib/closing.ts';

describe('Closing', () => {
  it('a pending wait rejects with the close error; its late outcome is ignored', async () => {
    const closing = new Closing();
    let fail!: (err: Error) => void;
    const wait = closing.until(new Promise((_, reject) => (fail = reject)));
    closing.close(new Error('closed'));
    await assert.rejects(wait, /closed/);
    fail(new Error('late failure'));
  });

  it('until() after close() rejects at once and still observes the pending promise', async () => {
    const closing = new Closing();
    closing.close(new Error('closed'));
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown): void => void unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      await assert.rejects(closing.until(Promise.reject(new Error('late failure'))), /closed/);
      // Unhandled rejections are reported after the microtask queue drains.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled, []);
  });

  it('a wait that settles first passes its value and is forgotten', async () => {
    const closing = new Closing();
    assert.equal(await closing.until(Promise.resolve(7)), 7);
    closing.close(new Error('closed'));
  });
});
