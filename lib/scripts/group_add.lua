-- group_add: add (or refresh) a channel's membership and push the group key's expiry out.
--
-- KEYS[1]  group: group key: prefix .. ':group:' .. group (ZSET)
-- ARGV[1]  score: time of the add, float Unix seconds
-- ARGV[2]  channel: channel name (member)
-- ARGV[3]  ttlMs: key TTL in milliseconds (group expiry)
--
-- Returns 1 when the channel is a new member, 0 when its membership was refreshed. A group key
-- holding another type fails the ZADD with WRONGTYPE before anything is written (the layer
-- reports it as NotAGroup).
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return added
