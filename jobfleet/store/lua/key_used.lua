-- Record a use of an API key: its id -> Redis time (ms) in the keys' last-use hash. One call, one key; the API
-- sends it at most once a minute per key per process.
-- KEYS: 1 the last-use hash
-- ARGV: 1 key id
-- Returns the time recorded (ms). Time comes from Redis so every API process shares one clock.
if redis.replicate_commands then redis.replicate_commands() end -- Redis 5/6: needed before TIME + writes
local t = redis.call("TIME")
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("HSET", KEYS[1], ARGV[1], now_ms)
return now_ms
