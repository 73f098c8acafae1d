-- send_many: send.lua for several messages in one call (the sends of one tick to one shard),
-- each with its own capacity check, in order. Saves a script call, a command round of the
-- client library and a reply per message when many sends are in flight.
--
-- KEYS[i]         channel key of message i (a key may repeat)
-- ARGV[5i-4 … 5i] score, member, capacity, expired-before, key TTL in ms — as send.lua
--
-- Returns a list: 1 where the message was added, 0 where its channel was full.
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local base = 5 * (i - 1)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[base + 4])
  if redis.call('ZCARD', key) >= tonumber(ARGV[base + 3]) then
    out[i] = 0
  else
    redis.call('ZADD', key, ARGV[base + 1], ARGV[base + 2])
    redis.call('PEXPIRE', key, ARGV[base + 5])
    out[i] = 1
  end
end
return out
