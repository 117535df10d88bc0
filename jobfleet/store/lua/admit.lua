-- Rate limit for one request, one round trip: the caller's token bucket. (Queue depth is checked by submit.lua,
-- atomically with the enqueue.)
-- KEYS: 1 token bucket hash of the caller
-- ARGV: 1 refill rate (tokens/s, 0 = no rate limit), 2 bucket size
-- Returns {"ok", 0} | {"rate", retry_after_ms}. Time comes from Redis so every API process shares one clock.
if redis.replicate_commands then redis.replicate_commands() end -- Redis 5/6: needed before TIME + writes
local rate = tonumber(ARGV[1])
if rate <= 0 then
  return {"ok", 0}
end
local burst = tonumber(ARGV[2])
local t = redis.call("TIME")
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call("HMGET", KEYS[1], "tokens", "at")
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now_ms
if now_ms > at then
  tokens = math.min(burst, tokens + (now_ms - at) * rate / 1000)
end
local ttl_ms = math.ceil(burst / rate * 1000) + 1000
if tokens < 1 then
  redis.call("HSET", KEYS[1], "tokens", tostring(tokens), "at", now_ms)
  redis.call("PEXPIRE", KEYS[1], ttl_ms)
  return {"rate", math.ceil((1 - tokens) * 1000 / rate)}
end
redis.call("HSET", KEYS[1], "tokens", tostring(tokens - 1), "at", now_ms)
redis.call("PEXPIRE", KEYS[1], ttl_ms)
return {"ok", 0}
