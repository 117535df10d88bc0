-- Purge a dead letter: its payload is dropped, it leaves the dead-letter indexes and the job becomes "failed" (final),
-- kept for the normal retention. Idempotent: a purged job answers "missing" to a second purge.
-- KEYS: 1 job hash, 2 audit stream, 3 dlq index
-- ARGV: 1 job id, 2 who, 3 key id, 4 retention s, 5 audit max length, 6 dlq-by-queue prefix, 7 dlq-by-type prefix,
--       8 dlq-by-caller prefix
-- Returns 1 when purged, 0 when there was no dead letter.
local f = redis.call("HMGET", KEYS[1], "state", "queue", "type", "caller")
if f[1] ~= "dead" then
  return 0
end
local now = now_ms()
redis.call("HSET", KEYS[1], "state", "failed", "msg", "", "traceback", "", "purged", now)
redis.call("EXPIRE", KEYS[1], ARGV[4])
for _, index in ipairs({KEYS[3], ARGV[6] .. f[2], ARGV[7] .. f[3], ARGV[8] .. (f[4] or "")}) do
  redis.call("ZREM", index, ARGV[1])
end
redis.call("XADD", KEYS[2], "MAXLEN", "~", ARGV[5], "*", "who", ARGV[2], "key_id", ARGV[3],
  "action", "purge", "target", ARGV[1], "count", 1, "detail", "{}")
return 1
