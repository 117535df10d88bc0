-- Record how an attempt ended and, in the same call, take this thread's next job off the queue.
-- Fenced: only the delivery holding the job's current token changes anything. A stale worker (its job was recovered
-- and handed to another delivery while it was paused or cut off) and a re-run of this very call (its reply was lost)
-- both find their running entry gone and change nothing. A retry waits on the job's own queue until it is due:
-- there is no second message to lose, and a cancel that arrived meanwhile wins over the retry.
-- KEYS: 1 job hash, 2 running zset, 3 queue zset, 4 dlq index, 5 dlq index of the queue, 6 of the job type,
--       7 of the caller, 8 held-back counts hash
-- ARGV: 1 outcome (succeeded|retrying|dead|cancelled), 2 token, 3 job id, 4 attempt, 5 attempt start ms,
--       22 try (names the history line), 23 replay number, 24 quota counters key prefix, 25 what the job still
--       counts against its caller's quotas (claim's flags), 26 its stored bytes, 27 its caller,
--       6 result json, 7 error json, 8 error type, 9 error message (short, for the history line), 10 traceback,
--       11 retry delay ms, 12 dead-letter reason, 13 retention of the record s, 14 keep the payload (1|0),
--       15 next jobs to take (0|1), 16 worker id, 17 job key prefix, 18 actor names (space-separated),
--       19 hold-back ms, 20 dead letters are indexed for this long (ms), 21 queue name
-- Returns {recorded outcome | "done" (already recorded) | "stale", next jobs (9 entries each, as fetch.lua), held}
local now = now_ms()
local id, outcome = ARGV[3], ARGV[1]
local verdict
if redis.call("ZREM", KEYS[2], id .. ":" .. ARGV[2]) == 0 then
  local f = redis.call("HMGET", KEYS[1], "token", "state")
  verdict = (f[1] == ARGV[2] and f[2] ~= "running") and "done" or "stale"
else
  if outcome == "retrying" and redis.call("HGET", KEYS[1], "cancel") then
    outcome = "cancelled"
  end
  local attempt, n, replay = "a" .. ARGV[22], ARGV[4], ARGV[23]
  if outcome == "succeeded" then
    local line = attempt_line(ARGV[5], now, outcome, "", n, replay)
    if ARGV[14] == "1" then
      redis.call("HSET", KEYS[1], "state", "succeeded", "finished", now, "result", ARGV[6], "worker", "", attempt, line)
    else  -- a succeeded job keeps no payload unless asked to, and is written anew in Redis's compact encoding
      rewrite(KEYS[1], {"state", "succeeded", "finished", now, "result", ARGV[6], "worker", "", attempt, line}, "msg")
    end
    redis.call("EXPIRE", KEYS[1], ARGV[13])
  elseif outcome == "retrying" then
    local due = now + tonumber(ARGV[11])
    redis.call("HSET", KEYS[1], "state", "retrying", "due", due, "error", ARGV[7], "worker", "",
      attempt, attempt_line(ARGV[5], now, outcome, due, n, replay, ARGV[8], ARGV[9]))
    redis.call("ZADD", KEYS[3], due, id)
  elseif outcome == "cancelled" then
    redis.call("HSET", KEYS[1], "state", "cancelled", "finished", now, "worker", "",
      attempt, attempt_line(ARGV[5], now, outcome, "", n, replay, ARGV[8], ARGV[9]))
    if ARGV[7] ~= "" then
      redis.call("HSET", KEYS[1], "error", ARGV[7])
    end
    redis.call("EXPIRE", KEYS[1], ARGV[13])
  else
    redis.call("HSET", KEYS[1], "state", "dead", "finished", now, "error", ARGV[7], "traceback", ARGV[10],
      "reason", ARGV[12], "worker", "", attempt, attempt_line(ARGV[5], now, "dead", "", n, replay, ARGV[8], ARGV[9]))
    redis.call("EXPIRE", KEYS[1], ARGV[13])
    index_dead({KEYS[4], KEYS[5], KEYS[6], KEYS[7]}, id, now, tonumber(ARGV[20]))
  end
  if outcome ~= "retrying" and ARGV[25] ~= "" then
    quota_release(KEYS[1], ARGV[24] .. ARGV[27], ARGV[25], ARGV[26], "all")
  end
  verdict = outcome
end
local out, held = {}, {}
if tonumber(ARGV[15]) > 0 then
  take({job_prefix = ARGV[17], queue = KEYS[3], running = KEYS[2], held_counts = KEYS[8], queue_name = ARGV[21],
    worker = ARGV[16], now = now, actors = name_set(ARGV[18]), hold_ms = tonumber(ARGV[19]), held = held,
    quota_prefix = ARGV[24]},
    tonumber(ARGV[15]), false, out)
end
return {verdict, out, held}
