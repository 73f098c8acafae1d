/**
 * Waits that `close()` must cut short. `Promise.race([pending, closed])` with one promise that
 * settles only at close would leave a reaction (two closures, a context and a promise) on that
 * promise for every call, until close: 100,000 `newChannel()` calls kept 100,000 of them
 * (≈ 30 MB). Here a wait is held only while it is pending.
 */
export class Closing {
  private readonly waits = new Set<(err: Error) => void>();
  private error: Error | undefined;

  /**
   * `pending`, or a rejection with the close error as soon as `close()` runs (or has run) —
   * or, with a `limit`, with `limit.error()` after `limit.ms`. No timer outlives the wait.
   */
  until<T>(pending: Promise<T>, limit?: { ms: number; error: () => Error }): Promise<T> {
    if (this.error) {
      // Still observed: its late failure must not become an unhandled rejection.
      pending.catch(() => {});
      return Promise.reject(this.error);
    }
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: unknown): void => {
        clearTimeout(timer);
        this.waits.delete(fail);
        reject(err);
      };
      this.waits.add(fail);
      if (limit) timer = setTimeout(() => fail(limit.error()), limit.ms);
      pending.then((value) => {
        clearTimeout(timer);
        this.waits.delete(fail);
        resolve(value);
      }, fail);
    });
  }

  /** Rejects every pending wait, and every later one, with `err`. */
  close(err: Error): void {
    this.error = err;
    const waits = [...this.waits];
    this.waits.clear();
    for (const reject of waits) reject(err);
  }
}
