/** Closing: the waits close() cuts short. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Closing } from '../lib/closing.ts';

/** Runs `body`, then collects the unhandled rejections reported once the microtasks drained. */
async function unhandledDuring(body: () => Promise<void>): Promise<unknown[]> {
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => void unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  try {
    await body();
    // Unhandled rejections are reported after the microtask queue drains.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  return unhandled;
}

/** The waits a Closing still holds (what 'forgotten' means: nothing kept for a settled wait). */
function held(closing: Closing): number {
  return (closing as unknown as { waits: Set<unknown> }).waits.size;
}

describe('Closing', () => {
  it('a pending wait rejects with the close error; its late outcome is ignored', async () => {
    for (const late of ['reject', 'resolve'] as const) {
      const closing = new Closing();
      let settle!: { resolve: (v: number) => void; reject: (err: Error) => void };
      const wait = closing.until(
        new Promise<number>((resolve, reject) => (settle = { resolve, reject })),
      );
      closing.close(new Error('closed'));
      assert.equal(held(closing), 0);
      const unhandled = await unhandledDuring(async () => {
        await assert.rejects(wait, /closed/);
        if (late === 'reject') settle.reject(new Error('late failure'));
        else settle.resolve(7);
        // Still the close error: the late outcome changes nothing.
        await assert.rejects(wait, /closed/);
      });
      assert.deepEqual(unhandled, [], late);
    }
  });

  it('until() after close() rejects at once and still observes the pending promise', async () => {
    const closing = new Closing();
    closing.close(new Error('closed'));
    const unhandled = await unhandledDuring(async () => {
      await assert.rejects(closing.until(Promise.reject(new Error('late failure'))), /closed/);
    });
    assert.deepEqual(unhandled, []);
  });

  it('a wait that settles first passes its outcome and is forgotten', async () => {
    const closing = new Closing();
    const resolved = closing.until(Promise.resolve(7));
    const rejected = closing.until(Promise.reject(new Error('own failure')));
    assert.equal(held(closing), 2);
    assert.equal(await resolved, 7);
    await assert.rejects(rejected, /own failure/);
    assert.equal(held(closing), 0);
    closing.close(new Error('closed'));
    assert.equal(await resolved, 7);
    await assert.rejects(rejected, /own failure/);
  });

  it('a limit rejects with its own error in time; close() or settling clears its timer', async () => {
    const timers = (): number =>
      process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const closing = new Closing();
    const never = new Promise<never>(() => {});
    const limited = closing.until(never, { ms: 20, error: () => new Error('too slow') });
    await assert.rejects(limited, /too slow/);
    assert.equal(held(closing), 0);

    const cut = closing.until(never, { ms: 60_000, error: () => new Error('too slow') });
    const settled = closing.until(Promise.resolve(1), { ms: 60_000, error: () => new Error('x') });
    assert.equal(await settled, 1);
    assert.equal(timers(), before + 1, 'only the pending wait holds a timer');
    closing.close(new Error('closed'));
    await assert.rejects(cut, /closed/);
    assert.equal(timers(), before, 'close() cleared it');
  });
});
