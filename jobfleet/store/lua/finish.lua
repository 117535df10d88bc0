-- Finish an attempt: status, attempt history, ledger commit/release, dead letter, event. One round trip.
-- The delivery is acked here too (same effect as Dramatiq's ack) and a retry's message is pushed here, so the
-- outcome, the ack and the retry happen together or not at all: no lost retry, no ack without an outcome.
-- KEYS: 1 job hash, 2 job events, 3 ledger hash, 4 running zset, 5 dlq index, 6 dlq entry, 7 dlq queue index,
--       8 acks set of the delivering worker ("" = the consumer acks), 9 messages hash of the delivering queue,
--       10 retry queue list (the .DQ) or "", 11 retry queue messages hash, 12 the delivering ready queue's list
--       to take this thread's next message from ("" = none), 13 heartbeats zset
-- ARGV: 1 now ms, 2 outcome (succeeded|retrying|dead|cancelled), 3 job ttl s, 4 ledger ttl s, 5 result json,
--       6 error json or "", 7 next retry at s or "", 8 dead letter json or "", 9 dlq ttl s, 10 events max length,
--       11 running member, 12 job id, 13 delivery token, 14 redis message id to ack, 15 retry redis message id,
--       16 retry encoded message, 17 worker id, 18-26 claim configuration (claim_config in claim.lua)
-- Returns {outcome} or, when KEYS[12] is set and the queue is not empty, {outcome, next message's 6 entries as
-- fetch.lua returns them}: the thread that just finished takes (and claims) its next message in the same call.
local now = tonumber(ARGV[1])
local nows = string.format("%.3f", now / 1000)
local outcome = ARGV[2]
local hist = cjson.decode(redis.call("HGET", KEYS[1], "history") or "[]")
local last = hist[#hist]
local err = nil
if ARGV[6] ~= "" then
  err = cjson.decode(ARGV[6])
end
if last and not last.finished_at then
  last.finished_at = tonumber(nows)
  last.outcome = outcome
  if err then
    last.error = {type = err.type, message = err.message}
  end
  if ARGV[7] ~= "" then
    last.next_retry_at = tonumber(ARGV[7])
  end
end
redis.call("HSET", KEYS[1], "history", cjson.encode(hist), "interruptions", 0)
redis.call("ZREM", KEYS[4], ARGV[11])

local owned = redis.call("HGET", KEYS[3], "token") == ARGV[13]
local data = {}
if outcome == "succeeded" then
  redis.call("HSET", KEYS[1], "state", "succeeded", "progress", 100, "result", ARGV[5], "finished_at", nows)
  redis.call("DEL", KEYS[3])
  redis.call("HSET", KEYS[3], "state", "done", "result", ARGV[5], "job_id", ARGV[12])
  redis.call("EXPIRE", KEYS[3], ARGV[4])
else
  if owned then
    redis.call("DEL", KEYS[3])
  end
  if err then
    redis.call("HSET", KEYS[1], "error", cjson.encode({type = err.type, message = err.message}))
    data.error = err.type
  end
  if outcome == "retrying" then
    redis.call("HSET", KEYS[1], "state", "retrying", "ready_at", ARGV[7])
    data.next_retry_at = tonumber(ARGV[7])
  elseif outcome == "cancelled" then
    redis.call("HSET", KEYS[1], "state", "cancelled", "finished_at", nows)
  else
    redis.call("HSET", KEYS[1], "state", "dead", "finished_at", nows)
    local entry = cjson.decode(ARGV[8])
    local first = nil
    for _, h in ipairs(hist) do
      if h.outcome and h.outcome ~= "succeeded" and not first then
        first = h.finished_at
      end
    end
    entry.attempts = #hist
    entry.first_failure_at = first or tonumber(nows)
    entry.last_failure_at = tonumber(nows)
    entry.dead_lettered_at = tonumber(nows)
    entry.history = hist
    redis.call("SET", KEYS[6], cjson.encode(entry), "EX", ARGV[9])
    redis.call("ZADD", KEYS[5], now, ARGV[12])
    redis.call("ZADD", KEYS[7], now, ARGV[12])
  end
end
local ttl = ARGV[3]
if outcome == "dead" and tonumber(ARGV[9]) > tonumber(ttl) then
  ttl = ARGV[9]  -- the status of a dead job stays readable as long as its dead letter
end
redis.call("EXPIRE", KEYS[1], ttl)
if #hist > 0 then
  data.attempt = #hist
end
redis.call("XADD", KEYS[2], "MAXLEN", ARGV[10], "*", "event", outcome, "at", nows, "data", cjson.encode(data))
redis.call("EXPIRE", KEYS[2], ttl)
if KEYS[8] ~= "" and redis.call("SREM", KEYS[8], ARGV[14]) > 0 then
  redis.call("HDEL", KEYS[9], ARGV[14])
end
if outcome == "retrying" and KEYS[10] ~= "" then
  redis.call("HSET", KEYS[11], ARGV[15], ARGV[16])
  redis.call("RPUSH", KEYS[10], ARGV[15])
end
local out = {outcome}
if KEYS[12] ~= "" then
  pop_and_claim(KEYS[12], KEYS[9], KEYS[8], claim_config(ARGV, 18, ARGV[17], ARGV[1], KEYS[13], KEYS[4]), out)
end
return out
