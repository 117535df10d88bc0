-- Give claimed jobs back unrun (worker shutdown, consumer restart): see give_back in lib.lua. Fenced and idempotent:
-- only entries still running under the given token are released; a re-run finds them gone and changes nothing.
-- KEYS: 1 running zset, 2 queue zset
-- ARGV: 1 job key prefix, 2 cancelled record retention s, 3 quota counters key prefix, then pairs of (job id, token)
-- Returns how many were released.
local now, released = now_ms(), 0
for i = 4, #ARGV, 2 do
  if redis.call("ZREM", KEYS[1], ARGV[i] .. ":" .. ARGV[i + 1]) == 1 then
    give_back(ARGV[1] .. ARGV[i], KEYS[2], ARGV[i], now, ARGV[2], ARGV[3])
    released = released + 1
  end
end
return released
