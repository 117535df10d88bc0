-- Record progress of a running job and tell the actor whether it was asked to cancel.
-- KEYS: 1 job hash, 2 job events
-- ARGV: 1 percent, 2 message, 3 now s, 4 events max length
if redis.call("HGET", KEYS[1], "state") ~= "running" then
  return 0
end
redis.call("HSET", KEYS[1], "progress", ARGV[1], "progress_message", ARGV[2])
redis.call("XADD", KEYS[2], "MAXLEN", ARGV[4], "*", "event", "progress", "at", ARGV[3],
  "data", cjson.encode({progress = tonumber(ARGV[1]), message = ARGV[2]}))
return tonumber(redis.call("HGET", KEYS[1], "cancel_requested") or "0")
