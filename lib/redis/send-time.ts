/**
 * The score a core-layer write gets: the send time as float Unix seconds (channels_redis's
 * format, docs/wire-protocol.md), strictly increasing within this process — two sends in the
 * same millisecond would otherwise tie, and a ZSET orders ties by member (the random prefix),
 * breaking FIFO. 1 µs steps are well above a double's resolution at current timestamps.
 */
let lastScore = 0;

export function nextScore(): number {
  let now = Date.now() / 1000;
  if (now <= lastScore) now = lastScore + 1e-6;
  lastScore = now;
  return now;
}
