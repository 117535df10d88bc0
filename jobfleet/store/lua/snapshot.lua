-- Read one partition's state for the exporter and `jobfleet status` in one call, bounded by the number of queues:
-- per queue the ready and delayed counts, the oldest due job, the in-flight count, the longest-running attempt and
-- its actor, and the dead letters; live workers. Reads only.
-- KEYS: 1 heartbeats zset, 2 held-back counts hash, then per queue three keys: queue zset, running zset, dlq index
--       of the queue
-- ARGV: 1 heartbeat timeout ms, 2 dlq window ms, 3 job key prefix
-- Returns {now, live workers, held-back counts (flat field/value list), then per queue: ready, delayed, oldest due ms
--          ("" = none), in flight, longest-running start ms ("" = none), its actor, dead letters, oldest dead letter
--          ms ("" = none)}
local now = now_ms()
local out = {now, redis.call("ZCOUNT", KEYS[1], now - tonumber(ARGV[1]), "+inf"), redis.call("HGETALL", KEYS[2])}
local dlq_since = now - tonumber(ARGV[2])
for i = 3, #KEYS, 3 do
  local queue, running, dlq = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local total = redis.call("ZCARD", queue)
  local ready = redis.call("ZCOUNT", queue, "-inf", now)
  local head = redis.call("ZRANGE", queue, 0, 0, "WITHSCORES")
  local oldest = ""
  if #head > 0 and tonumber(head[2]) <= now then
    oldest = head[2]
  end
  local longest = redis.call("ZRANGE", running, 0, 0, "WITHSCORES")
  local started, actor = "", ""
  if #longest > 0 then
    started = longest[2]
    local id = string.match(longest[1], "^(.*):%d+$")
    actor = redis.call("HGET", ARGV[3] .. (id or ""), "actor") or ""
  end
  local dead = redis.call("ZRANGEBYSCORE", dlq, dlq_since, "+inf", "WITHSCORES", "LIMIT", 0, 1)
  out[#out + 1] = ready
  out[#out + 1] = total - ready
  out[#out + 1] = oldest
  out[#out + 1] = redis.call("ZCARD", running)
  out[#out + 1] = started
  out[#out + 1] = actor
  out[#out + 1] = redis.call("ZCOUNT", dlq, dlq_since, "+inf")
  out[#out + 1] = #dead > 0 and dead[2] or ""
end
return out
