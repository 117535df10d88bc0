-- Mark a worker process alive in one partition, by Redis's clock (never the worker's), and forget workers silent for
-- much longer than the heartbeat timeout. A draining worker that leaves work behind heartbeats "in the past" so the
-- others recover that work right after it exits instead of a whole timeout later.
-- KEYS: 1 heartbeats zset
-- ARGV: 1 worker id, 2 forget workers silent for this long (ms), 3 age this heartbeat by (ms, normally 0)
-- Returns Redis's time (ms).
local now = now_ms()
redis.call("ZADD", KEYS[1], now - tonumber(ARGV[3]), ARGV[1])
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", "(" .. (now - tonumber(ARGV[2])))
return now
