-- drain: non-blocking batch pop over the keys a reader watches, lowest score (oldest) first.
--
-- KEYS[i]  queue: channel key i (ZSET), i = 1..n
-- ARGV[i]  count: how many members to pop from KEYS[i] at most (0 skips it)
--
-- Returns one entry per key that gave anything: { i, member1, score1, member2, score2, … },
-- and { -i, type } per key that holds something other than a sorted set: it is skipped, not an
-- error, so what the other keys gave in this call is never lost with an error reply.
local out = {}
for i = 1, #KEYS do
  local count = tonumber(ARGV[i])
  if count > 0 then
    local popped = redis.pcall('ZPOPMIN', KEYS[i], count)
    if popped.err then
      if not string.find(popped.err, 'WRONGTYPE', 1, true) then
        return popped
      end
      out[#out + 1] = { -i, redis.call('TYPE', KEYS[i])['ok'] }
    elseif #popped > 0 then
      table.insert(popped, 1, i)
      out[#out + 1] = popped
    end
  end
end
return out
