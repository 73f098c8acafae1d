-- restore_inflight: put back what a channels_redis receiver left in its `$inflight` backup
-- (it copies each popped message there and removes it after delivery; a crash in between
-- leaves it behind). Same effect as channels_redis's own cleanup script, plus an expiry so a
-- restored queue never outlives its messages.
--
-- KEYS[1]  queue: channel key (ZSET)
-- KEYS[2]  inflight: its backup, KEYS[1] .. '$inflight' (ZSET, same scores)
-- ARGV[1]  ttlMs: TTL in milliseconds for KEYS[1] when it has none after the restore
--
-- Returns how many messages were restored.
local backed_up = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
if #backed_up == 0 then
  return 0
end
for i = #backed_up, 1, -2 do
  redis.call('ZADD', KEYS[1], backed_up[i], backed_up[i - 1])
end
redis.call('DEL', KEYS[2])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return #backed_up / 2
