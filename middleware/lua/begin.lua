-- Start an attempt: state check, idempotency lease, crash-loop detection, attempt history, event. One round trip.
-- KEYS: 1 job hash, 2 job events, 3 ledger hash, 4 broker heartbeats zset, 5 running zset
-- ARGV: 1 now ms, 2 job ttl s, 3 delivery token, 4 worker id, 5 lease ms, 6 heartbeat timeout ms,
--       7 max interrupted deliveries, 8 events max length, 9 ledger ttl s, 10 job id, 11 running member,
--       12 record json used when the status record is missing
local now = tonumber(ARGV[1])
local nows = string.format("%.3f", now / 1000)
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  if ARGV[12] == "" then
    return {"missing", ""}  -- rare: the caller sends the record to recreate and calls again
  end
  local rec = cjson.decode(ARGV[12])
  for k, v in pairs(rec) do
    redis.call("HSET", KEYS[1], k, v)
  end
  state = "queued"
end
if state == "cancelled" then
  return {"cancelled", state}
end
if state == "succeeded" or state == "dead" or state == "failed" then
  return {"finished", state}
end

local ledger = redis.call("HMGET", KEYS[3], "state", "token", "worker", "lease_until", "result")
if ledger[1] == "done" then
  local result = ledger[5] or "null"
  redis.call("HSET", KEYS[1], "state", "succeeded", "progress", 100, "result", result, "finished_at", nows,
    "deduplicated", 1)
  redis.call("EXPIRE", KEYS[1], ARGV[2])
  redis.call("XADD", KEYS[2], "MAXLEN", ARGV[8], "*", "event", "duplicate_skipped", "at", nows, "data", "{}")
  redis.call("EXPIRE", KEYS[2], ARGV[2])
  return {"duplicate", result}
end
if ledger[1] == "running" and ledger[2] ~= ARGV[3] then
  local beat = redis.call("ZSCORE", KEYS[4], ledger[3])
  local alive = beat and (now - tonumber(beat) < tonumber(ARGV[6]))
  if alive and tonumber(ledger[4]) > now then
    return {"busy", ledger[3]}
  end
end

local hist = cjson.decode(redis.call("HGET", KEYS[1], "history") or "[]")
if state == "running" then
  -- The previous delivery started and never finished: its worker died (or lost Redis) mid-attempt.
  local last = hist[#hist]
  if last and not last.finished_at then
    last.finished_at = nows
    last.outcome = "interrupted"
    last.error = {type = "WorkerLost", message = "the worker running this attempt stopped before it finished"}
  end
  local interrupted = redis.call("HINCRBY", KEYS[1], "interruptions", 1)
  if interrupted >= tonumber(ARGV[7]) then
    redis.call("HSET", KEYS[1], "history", cjson.encode(hist))
    return {"poison", tostring(interrupted)}
  end
end

redis.call("HSET", KEYS[3], "state", "running", "token", ARGV[3], "worker", ARGV[4],
  "lease_until", now + tonumber(ARGV[5]), "job_id", ARGV[10])
redis.call("EXPIRE", KEYS[3], ARGV[9])
local attempts = redis.call("HINCRBY", KEYS[1], "attempts", 1)
hist[#hist + 1] = {attempt = attempts, started_at = tonumber(nows),
  replay = tonumber(redis.call("HGET", KEYS[1], "replays") or "0")}
redis.call("HSET", KEYS[1], "state", "running", "started_at", nows, "history", cjson.encode(hist))
redis.call("EXPIRE", KEYS[1], ARGV[2])
redis.call("ZADD", KEYS[5], now, ARGV[11])
redis.call("XADD", KEYS[2], "MAXLEN", ARGV[8], "*", "event", "started", "at", nows,
  "data", cjson.encode({attempt = attempts}))
redis.call("EXPIRE", KEYS[2], ARGV[2])
local enqueued = redis.call("HMGET", KEYS[1], "enqueued_at", "ready_at")
return {"run", tostring(attempts), enqueued[1] or "", enqueued[2] or ""}
