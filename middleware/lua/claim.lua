-- claim(): start an attempt — state check, idempotency lease, crash-loop detection, attempt history, event.
-- Shared by begin.lua (one delivery, called by the worker thread) and fetch.lua (every message of a fetch, so a
-- delivery costs no round trip of its own). The script loader prepends this file to both.
-- c: job (hash key), events, ledger, heartbeats, running (keys); now (ms), job_ttl, ledger_ttl (s), token,
--    worker, lease_ms, heartbeat_timeout (ms), max_interruptions, events_max, job_id, member, record (json or "")
-- Returns {verdict, details...}: run (attempt, enqueued_at, ready_at), missing, cancelled/finished (state),
-- duplicate (result), busy (lease holder), poison (interruptions).
local function claim(c)
  local now = tonumber(c.now)
  local nows = string.format("%.3f", now / 1000)
  local state = redis.call("HGET", c.job, "state")
  if not state then
    if c.record == "" then
      return {"missing", ""}  -- rare: the caller sends the record to recreate and calls again
    end
    local rec = cjson.decode(c.record)
    for k, v in pairs(rec) do
      redis.call("HSET", c.job, k, v)
    end
    state = "queued"
  end
  if state == "cancelled" then
    return {"cancelled", state}
  end
  if state == "succeeded" or state == "dead" or state == "failed" then
    return {"finished", state}
  end

  local ledger = redis.call("HMGET", c.ledger, "state", "token", "worker", "lease_until", "result")
  if ledger[1] == "done" then
    local result = ledger[5] or "null"
    redis.call("HSET", c.job, "state", "succeeded", "progress", 100, "result", result, "finished_at", nows,
      "deduplicated", 1)
    redis.call("EXPIRE", c.job, c.job_ttl)
    redis.call("XADD", c.events, "MAXLEN", c.events_max, "*", "event", "duplicate_skipped", "at", nows,
      "data", "{}")
    redis.call("EXPIRE", c.events, c.job_ttl)
    return {"duplicate", result}
  end
  if ledger[1] == "running" and ledger[2] ~= c.token then
    local beat = redis.call("ZSCORE", c.heartbeats, ledger[3])
    local alive = beat and (now - tonumber(beat) < tonumber(c.heartbeat_timeout))
    if alive and tonumber(ledger[4]) > now then
      return {"busy", ledger[3]}
    end
  end

  local hist = cjson.decode(redis.call("HGET", c.job, "history") or "[]")
  if state == "running" then
    -- The previous delivery started and never finished: its worker died (or lost Redis) mid-attempt.
    local last = hist[#hist]
    if last and not last.finished_at then
      last.finished_at = nows
      last.outcome = "interrupted"
      last.error = {type = "WorkerLost", message = "the worker running this attempt stopped before it finished"}
    end
    local interrupted = redis.call("HINCRBY", c.job, "interruptions", 1)
    if interrupted >= tonumber(c.max_interruptions) then
      redis.call("HSET", c.job, "history", cjson.encode(hist))
      return {"poison", tostring(interrupted)}
    end
  end

  redis.call("HSET", c.ledger, "state", "running", "token", c.token, "worker", c.worker,
    "lease_until", now + tonumber(c.lease_ms), "job_id", c.job_id)
  redis.call("EXPIRE", c.ledger, c.ledger_ttl)
  local attempts = redis.call("HINCRBY", c.job, "attempts", 1)
  hist[#hist + 1] = {attempt = attempts, started_at = tonumber(nows),
    replay = tonumber(redis.call("HGET", c.job, "replays") or "0")}
  redis.call("HSET", c.job, "state", "running", "started_at", nows, "history", cjson.encode(hist))
  redis.call("EXPIRE", c.job, c.job_ttl)
  redis.call("ZADD", c.running, now, c.member)
  redis.call("XADD", c.events, "MAXLEN", c.events_max, "*", "event", "started", "at", nows,
    "data", cjson.encode({attempt = attempts}))
  redis.call("EXPIRE", c.events, c.job_ttl)
  local enqueued = redis.call("HMGET", c.job, "enqueued_at", "ready_at")
  return {"run", tostring(attempts), enqueued[1] or "", enqueued[2] or ""}
end
