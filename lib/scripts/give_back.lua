-- give_back: return prefetched messages nobody here claimed to their queue, unchanged (same
-- member bytes, same scores, so they sit where they were and other readers see them again).
--
-- KEYS[1]  channel key (ZSET)
-- ARGV[1]  TTL in milliseconds for KEYS[1] when it has none (it may have been emptied by the pop)
-- ARGV[2…] score, member, score, member, …
--
-- Returns how many were put back.
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return (#ARGV - 1) / 2
