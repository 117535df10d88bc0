-- Purge a dead letter: it is gone for good; the job's state becomes "failed" (final, no longer in the DLQ).
-- KEYS: 1 dlq entry, 2 dlq index, 3 dlq queue index, 4 job hash, 5 job events, 6 audit stream
-- ARGV: 1 now s, 2 job id, 3 caller, 4 events max, 5 audit max, 6 audit action ("" = caller audits)
local existed = redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], ARGV[2])
redis.call("ZREM", KEYS[3], ARGV[2])
if existed == 0 then
  return 0
end
if redis.call("HGET", KEYS[4], "state") == "dead" then
  redis.call("HSET", KEYS[4], "state", "failed")
  redis.call("XADD", KEYS[5], "MAXLEN", ARGV[4], "*", "event", "purged", "at", ARGV[1],
    "data", cjson.encode({by = ARGV[3]}))
end
if ARGV[6] ~= "" then
  redis.call("XADD", KEYS[6], "MAXLEN", "~", ARGV[5], "*", "at", ARGV[1], "who", ARGV[3], "action", ARGV[6],
    "target", ARGV[2], "count", 1, "detail", "{}")
end
return 1
