-- wake: ends a reader's BZPOPMIN, which always includes the reader's own wake key (reader.ts),
-- so it blocks again over the keys demanded now. One constant member: wakes sent before the
-- reader pops collapse into one. The expiry bounds what a process that died leaves behind.
--
-- KEYS[1]  wakeKey: the reader's wake key (ZSET; wake.ts)
-- ARGV[1]  ttlMs: TTL in milliseconds
redis.call('ZADD', KEYS[1], 0, 'wake')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
