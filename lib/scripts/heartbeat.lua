-- heartbeat: registers this process in the liveness registry (docs: README "Operations") and
-- returns the verdict: which registered processes are dead. Scores are Redis server time in ms
-- (TIME), never a client clock. Members starting with ':' are not processes (':grace').
--
-- KEYS[1]  registry: prefix .. ':processes' (ZSET: client prefix → last heartbeat, ms)
-- ARGV[1]  client: this process's client prefix
-- ARGV[2]  deadAfterMs: a process silent this long is dead
-- ARGV[3]  trimAfterMs: a process silent this long is forgotten (groupExpiry + deadAfter: its
--          memberships have expired too); also the registry key's TTL
--
-- Returns { revived, graceUntil, dead… }: revived is 1 when this process's own last heartbeat
-- was already older than deadAfterMs (others may have removed its memberships meanwhile);
-- graceUntil is the server time (ms) until which no verdict is given, 0 when none is in effect
-- (then dead… is empty); dead… are the client prefixes of dead processes.

-- Redis 5/6 replicate a script by its source unless told otherwise, and refuse writes after a
-- non-deterministic command (TIME); Redis 7 always replicates effects (the call is a no-op or
-- absent there).
pcall(redis.replicate_commands)

local key = KEYS[1]
local dead_after = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function score(member)
  local s = redis.call('ZSCORE', key, member)
  if s then return tonumber(s) end
  return nil
end
local own = score(ARGV[1])
local grace = score(':grace') or 0

-- Outage guard: nobody has beaten for deadAfter (the registry's server was down, or the whole
-- deployment was): every process would look dead now. No verdict until deadAfter from now.
-- The two highest: ':grace' is the one member that is not a process.
local latest
local top = redis.call('ZREVRANGE', key, 0, 1, 'WITHSCORES')
for i = 1, #top, 2 do
  if string.sub(top[i], 1, 1) ~= ':' then
    latest = tonumber(top[i + 1])
    break
  end
end
if latest ~= nil and latest < now - dead_after then
  grace = now + dead_after
  redis.call('ZADD', key, grace, ':grace')
end

redis.call('ZADD', key, now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[3]))
redis.call('PEXPIRE', key, ARGV[3])

local revived = 0
if own ~= nil and own < now - dead_after then revived = 1 end
if grace > now then return { revived, grace } end

local reply = { revived, 0 }
for _, client in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. (now - dead_after))) do
  if string.sub(client, 1, 1) ~= ':' then reply[#reply + 1] = client end
end
return reply
