-- group_send: add one group message to every channel key of one shard (or a chunk of them),
-- each with its own capacity check. A full key is skipped silently, as in channels_redis, but
-- reported so the caller can count it. A key that holds something other than a sorted set (not
-- a channel queue) is skipped too, and reported: a script error would stop the call half-way,
-- with the earlier keys written and the later ones not.
--
-- KEYS[i]         queue: channel key i on this shard (each key at most once), i = 1..n
-- ARGV[1]         score: send time, float Unix seconds
-- ARGV[2]         expiredBefore: members scored at or below this (now - expiry) are dropped
-- ARGV[3]         ttlMs: key TTL in milliseconds (PEXPIRE)
-- ARGV[3+i]       member: for KEYS[i] (its __asgi_channel__ lists the group's channels there)
-- ARGV[3+n+i]     capacity: of KEYS[i]
--
-- Returns the list of skipped keys, empty when all were added: i (1-based) when KEYS[i] was
-- full, -i when it holds something other than a sorted set (nothing written to either).
-- @include "includes/is_queue.lua"

local n = #KEYS
local skipped = {}
for i = 1, n do
  local key = KEYS[i]
  if not is_queue(key) then
    skipped[#skipped + 1] = -i
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
    if redis.call('ZCARD', key) < tonumber(ARGV[3 + n + i]) then
      redis.call('ZADD', key, ARGV[1], ARGV[3 + i])
      redis.call('PEXPIRE', key, ARGV[3])
    else
      skipped[#skipped + 1] = i
    end
  end
end
return skipped
