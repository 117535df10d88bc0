-- Cancel a job: a waiting job becomes cancelled at once, a running one is asked to stop, a finished one refuses.
-- KEYS: 1 job hash, 2 job events, 3 audit stream
-- ARGV: 1 now s, 2 caller, 3 events max length, 4 audit max length, 5 job id
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  return {"missing", ""}
end
if state == "queued" or state == "scheduled" or state == "retrying" then
  redis.call("HSET", KEYS[1], "state", "cancelled", "finished_at", ARGV[1], "cancel_requested", 1)
  redis.call("XADD", KEYS[2], "MAXLEN", ARGV[3], "*", "event", "cancelled", "at", ARGV[1],
    "data", cjson.encode({by = ARGV[2]}))
elseif state == "running" then
  redis.call("HSET", KEYS[1], "cancel_requested", 1)
  redis.call("XADD", KEYS[2], "MAXLEN", ARGV[3], "*", "event", "cancel_requested", "at", ARGV[1],
    "data", cjson.encode({by = ARGV[2]}))
else
  return {"refused", state}
end
redis.call("XADD", KEYS[3], "MAXLEN", "~", ARGV[4], "*", "at", ARGV[1], "who", ARGV[2], "action", "cancel",
  "target", ARGV[5], "count", 1)
return {"ok", state}
