-- group_send: add one group message to every channel key of one shard (or a chunk of them),
-- each with its own capacity check. A full key is skipped silently, as in channels_redis, but
-- reported so the caller can count it.
--
-- KEYS[1..n]      channel keys on this shard, each at most once
-- ARGV[1]         score: send time, float Unix seconds
-- ARGV[2]         expired-before: members scored at or below this (now - expiry) are dropped
-- ARGV[3]         key TTL in milliseconds (PEXPIRE)
-- ARGV[3+i]       member for KEYS[i] (its __asgi_channel__ lists the group's channels there)
-- ARGV[3+n+i]     capacity of KEYS[i]
--
-- Returns the list of indices i (1-based) whose key was full; empty when all were added.
local n = #KEYS
local full = {}
for i = 1, n do
  local key = KEYS[i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
  if redis.call('ZCARD', key) < tonumber(ARGV[3 + n + i]) then
    redis.call('ZADD', key, ARGV[1], ARGV[3 + i])
    redis.call('PEXPIRE', key, ARGV[3])
  else
    full[#full + 1] = i
  end
end
return full
