-- give_back: return prefetched messages nobody here claimed to their queue, unchanged (same
-- member bytes, same scores, so they sit where they were and other readers see them again).
--
-- KEYS[1]       queue: channel key (ZSET)
-- ARGV[1]       ttlMs: TTL for KEYS[1] when it has none (it may have been emptied by the pop)
-- ARGV[2i]      score: message i's score, i = 1..n
-- ARGV[2i + 1]  member: message i's member
--
-- Returns how many were put back.
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return (#ARGV - 1) / 2
