/** `pending`, or a rejection with `onTimeout()` after `ms`; the timer never outlives the wait. */
export function deadline<T>(pending: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([pending, timeout]).finally(() => clearTimeout(timer));
}
