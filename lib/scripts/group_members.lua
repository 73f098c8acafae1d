-- group_members: drop expired memberships and read the rest, atomically, on the group's shard.
--
-- KEYS[1]  group key: prefix .. ':group:' .. group (ZSET of channel names)
-- ARGV[1]  expired-before: memberships scored at or below this (now - group expiry) are dropped
--
-- Returns the member channel names, oldest membership first.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
