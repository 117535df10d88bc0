-- Cancel a job: a waiting one (queued, scheduled, retrying) is cancelled at once and leaves its queue; a running one
-- is asked to stop (its next progress report raises, and a retry it would make is cancelled instead); a finished one
-- refuses (a cancelled one too). Idempotent: a re-run of the same request (same request id) answers as the first run
-- did. Audited in the same call.
-- KEYS: 1 job hash, 2 audit stream
-- ARGV: 1 job id, 2 who, 3 key id, 4 retention of a cancelled record s, 5 audit max length, 6 queue key prefix,
--       7 request id, 8 quota counters key prefix
-- Returns {"ok", previous state} | {"missing", ""} | {"refused", state}
local f = redis.call("HMGET", KEYS[1], "state", "queue", "cancel_request", "cancel_previous", "quota", "bytes",
  "caller")
local state = f[1]
if not state then
  return {"missing", ""}
end
if f[3] == ARGV[7] then
  return {"ok", f[4]}
end
local now = now_ms()
if state == "queued" or state == "retrying" then
  redis.call("HSET", KEYS[1], "state", "cancelled", "finished", now, "cancel", now .. " " .. ARGV[2])
  redis.call("ZREM", ARGV[6] .. f[2], ARGV[1])
  quota_release(KEYS[1], ARGV[8] .. (f[7] or ""), f[5], f[6], "all")
  redis.call("EXPIRE", KEYS[1], ARGV[4])
elseif state == "running" then
  redis.call("HSET", KEYS[1], "cancel", now .. " " .. ARGV[2])
else
  return {"refused", state}
end
redis.call("HSET", KEYS[1], "cancel_request", ARGV[7], "cancel_previous", state)
redis.call("XADD", KEYS[2], "MAXLEN", "~", ARGV[5], "*", "who", ARGV[2], "key_id", ARGV[3],
  "action", "cancel", "target", ARGV[1], "count", 1, "detail", "{}")
return {"ok", state}
