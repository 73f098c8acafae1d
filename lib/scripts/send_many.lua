-- send_many: send.lua for the sends of one tick to one shard, grouped by key. Each message
-- still gets its own capacity check, in order; the key is trimmed once, with its first
-- message's cutoff (the others were sent microseconds later), and expired once.
-- The messages of a key travel as one packed string instead of two arguments each: that is
-- what most of the client's cost per message was (building and writing each argument).
--
-- KEYS[j]        queue: channel key j (each key once)
-- ARGV[1]        ttlMs: key TTL in milliseconds (PEXPIRE; expiry may be fractional)
-- ARGV[3j - 1]   capacity: key j's queue may hold at most this many messages
-- ARGV[3j]       expiredBefore: key j's members scored at or below it are dropped first
-- ARGV[3j + 1]   packed: key j's messages, in send order, each: score (big-endian double),
--                member length (big-endian uint32), member (random prefix .. message body)
--
-- Returns a list: for key j, how many of its messages were added — the first ones; once a
-- queue is full, every later message of that key in the call is full too. -1 when key j holds
-- something other than a sorted set (not a channel queue): nothing of it is written, and the
-- other keys' sends go on (a script error would stop the call with earlier keys written).
-- @include "includes/is_queue.lua"

local out = {}
for j = 1, #KEYS do
  local key = KEYS[j]
  if not is_queue(key) then
    out[j] = -1
  else
    local capacity = tonumber(ARGV[3 * j - 1])
    local packed = ARGV[3 * j + 1]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[3 * j])
    local size = redis.call('ZCARD', key)
    local added = 0
    local pos = 1
    while pos <= #packed do
      local score, length
      score, length, pos = struct.unpack('>dI4', packed, pos)
      if size >= capacity then
        break
      end
      size = size + redis.call('ZADD', key, score, string.sub(packed, pos, pos + length - 1))
      added = added + 1
      pos = pos + length
    end
    if added > 0 then
      redis.call('PEXPIRE', key, ARGV[1])
    end
    out[j] = added
  end
end
return out
