-- send: add one message to a channel queue unless it is at capacity. One atomic round trip
-- (channels_redis does ZREMRANGEBYSCORE, ZCOUNT, ZADD, EXPIRE separately and overshoots
-- capacity under concurrent senders, upstream #229).
--
-- KEYS[1]  queue: channel key: prefix .. non-local channel name (ZSET)
-- ARGV[1]  score: send time, float Unix seconds
-- ARGV[2]  member: random prefix .. message body
-- ARGV[3]  capacity: the queue may hold at most this many messages
-- ARGV[4]  expiredBefore: members scored at or below this (now - expiry) are dropped first
-- ARGV[5]  ttlMs: key TTL in milliseconds (PEXPIRE; expiry may be fractional)
--
-- Returns 1 when added, 0 when the channel is full (nothing written), -1 when the key holds
-- something other than a sorted set (not a channel queue; nothing written).
-- @include "includes/is_queue.lua"

if not is_queue(KEYS[1]) then
  return -1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
