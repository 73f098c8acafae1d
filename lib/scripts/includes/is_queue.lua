-- is_queue(key): whether `key` can be a channel queue: a sorted set, or no key yet. Anything
-- else belongs to something other than a channel layer, and is never written to.
local function is_queue(key)
  local kind = redis.call('TYPE', key)['ok']
  return kind == 'zset' or kind == 'none'
end
