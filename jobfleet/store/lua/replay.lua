-- Replay a dead letter: the job goes back on its queue with fresh attempts and the very message that was accepted
-- (never decoded or rebuilt), leaves the dead-letter indexes, and lives on without a TTL until it ends again. Its
-- history is kept: the new attempts' lines follow the old ones.
-- Idempotent: a re-run with the same request id answers as the first run did.
-- KEYS: 1 job hash, 2 audit stream, 3 dlq index
-- ARGV: 1 job id, 2 replay request id, 3 who, 4 key id, 5 audit max length ("" = the caller audits in bulk),
--       6 queue key prefix, 7 dlq-by-queue prefix, 8 dlq-by-type prefix, 9 dlq-by-caller prefix
-- Returns {"ok", replay number} | {"missing", ""} | {"refused", state} (not dead, or no message it could run)
local f = redis.call("HMGET", KEYS[1], "state", "queue", "type", "caller", "replays", "replay_request", "msg",
  "reason")
if not f[1] then
  return {"missing", ""}
end
if f[6] == ARGV[2] then
  return {"ok", f[5] or "1"}
end
if f[1] ~= "dead" or not f[7] or f[7] == "" or f[8] == "poison" then
  return {"refused", f[1]}
end
local now = now_ms()
local replays = (tonumber(f[5]) or 0) + 1
redis.call("HDEL", KEYS[1], "finished", "result", "error", "traceback", "reason", "cancel", "progress",
  "progress_message", "progress_at", "progress_log", "interruptions")
redis.call("HSET", KEYS[1], "state", "queued", "attempts", 0, "due", now, "replays", replays, "replayed", now,
  "replay_request", ARGV[2])
redis.call("PERSIST", KEYS[1])
redis.call("ZADD", ARGV[6] .. f[2], now, ARGV[1])
for _, index in ipairs({KEYS[3], ARGV[7] .. f[2], ARGV[8] .. f[3], ARGV[9] .. (f[4] or "")}) do
  redis.call("ZREM", index, ARGV[1])
end
if ARGV[5] ~= "" then
  redis.call("XADD", KEYS[2], "MAXLEN", "~", ARGV[5], "*", "who", ARGV[3], "key_id", ARGV[4],
    "action", "replay", "target", ARGV[1], "count", 1, "detail", "{}")
end
return {"ok", replays}
