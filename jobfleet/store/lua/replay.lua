-- Replay a dead letter: remove it, reset the job for fresh attempts, push its message, record it. Atomic.
-- KEYS: 1 dlq entry, 2 dlq index, 3 dlq queue index, 4 job hash, 5 job events, 6 queue list, 7 queue messages,
--       8 audit stream
-- ARGV: 1 now s, 2 redis message id, 3 encoded message, 4 job ttl s, 5 events max, 6 caller, 7 audit max,
--       8 job id, 9 record json used when the job's status expired, 10 audit action ("" = caller audits)
if redis.call("EXISTS", KEYS[1]) == 0 then
  return {"missing", ""}
end
redis.call("DEL", KEYS[1])
redis.call("ZREM", KEYS[2], ARGV[8])
redis.call("ZREM", KEYS[3], ARGV[8])
if redis.call("EXISTS", KEYS[4]) == 0 then
  local rec = cjson.decode(ARGV[9])
  for k, v in pairs(rec) do
    redis.call("HSET", KEYS[4], k, v)
  end
end
local replays = redis.call("HINCRBY", KEYS[4], "replays", 1)
redis.call("HSET", KEYS[4], "state", "queued", "attempts", 0, "progress", 0, "progress_message", "",
  "result", "", "error", "", "started_at", "", "finished_at", "", "interruptions", 0, "cancel_requested", 0,
  "ready_at", ARGV[1])
redis.call("EXPIRE", KEYS[4], ARGV[4])
redis.call("XADD", KEYS[5], "MAXLEN", ARGV[5], "*", "event", "replayed", "at", ARGV[1],
  "data", cjson.encode({by = ARGV[6], replay = replays}))
redis.call("EXPIRE", KEYS[5], ARGV[4])
redis.call("HSET", KEYS[7], ARGV[2], ARGV[3])
redis.call("RPUSH", KEYS[6], ARGV[2])
if ARGV[10] ~= "" then
  redis.call("XADD", KEYS[8], "MAXLEN", "~", ARGV[7], "*", "at", ARGV[1], "who", ARGV[6], "action", ARGV[10],
    "target", ARGV[8], "count", 1, "detail", "{}")
end
return {"ok", tostring(replays)}
