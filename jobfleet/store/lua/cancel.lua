-- Cancel a job: a waiting one (queued, scheduled, retrying) is cancelled at once and leaves its queue; a running one
-- is asked to stop (its next progress report raises, and a retry it would make is cancelled instead); a finished one
-- refuses. Idempotent: cancelling a cancelled job answers the same again. Audited in the same call.
-- KEYS: 1 job hash, 2 audit stream
-- ARGV: 1 job id, 2 who, 3 key id, 4 retention of a cancelled record s, 5 audit max length, 6 queue key prefix
-- Returns {"ok", previous state} | {"missing", ""} | {"refused", state}
local f = redis.call("HMGET", KEYS[1], "state", "queue")
local state = f[1]
if not state then
  return {"missing", ""}
end
local now = now_ms()
if state == "cancelled" then
  return {"ok", state}
elseif state == "queued" or state == "retrying" then
  redis.call("HSET", KEYS[1], "state", "cancelled", "finished", now, "cancel", now .. " " .. ARGV[2])
  redis.call("ZREM", ARGV[6] .. f[2], ARGV[1])
  redis.call("EXPIRE", KEYS[1], ARGV[4])
elseif state == "running" then
  redis.call("HSET", KEYS[1], "cancel", now .. " " .. ARGV[2])
else
  return {"refused", state}
end
redis.call("XADD", KEYS[2], "MAXLEN", "~", ARGV[5], "*", "at", now, "who", ARGV[2], "key_id", ARGV[3],
  "action", "cancel", "target", ARGV[1], "count", 1, "detail", "{}")
return {"ok", state}
