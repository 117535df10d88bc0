-- claim(): start an attempt — state check, idempotency lease, crash-loop detection, attempt history, event.
-- Shared by begin.lua (one delivery, called by the worker thread), fetch.lua (every message of a fetch) and
-- finish.lua (the next message for the thread that just finished), so a delivery costs no round trip of its own.
-- The script loader prepends this file to all three.
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

local function present(v)
  return v ~= nil and v ~= cjson.null and v ~= ""
end

-- The fields of an encoded Dramatiq message and their Lua types: anything else is left for the worker to decode
-- (and dead-letter as poison), never claimed.
local MESSAGE_FIELDS = {queue_name = "string", actor_name = "string", args = "table", kwargs = "table",
  options = "table", message_id = "string", message_timestamp = "number"}

local function well_formed(msg)
  if type(msg) ~= "table" then
    return false
  end
  for name, kind in pairs(MESSAGE_FIELDS) do
    if type(msg[name]) ~= kind then
      return false
    end
  end
  for name, _ in pairs(msg) do
    if not MESSAGE_FIELDS[name] then
      return false
    end
  end
  return present(msg.options.redis_message_id)
end

-- What claiming needs besides the message, from 9 script arguments starting at argv[first] (the order of
-- middleware.claims.Claims.fetch_args): "1" to claim (else nil is returned), namespace, job ttl s, ledger ttl s,
-- heartbeat timeout ms, max interrupted deliveries, events max length, lease margin ms, actors json
-- {actor name: [default job type, time limit ms]}.
local function claim_config(argv, first, worker, now, heartbeats, running)
  if argv[first] ~= "1" then
    return nil
  end
  return {ns = argv[first + 1], job_ttl = argv[first + 2], ledger_ttl = argv[first + 3],
    heartbeat_timeout = argv[first + 4], max_interruptions = argv[first + 5], events_max = argv[first + 6],
    margin = tonumber(argv[first + 7]), actors = cjson.decode(argv[first + 8]), worker = worker, now = now,
    heartbeats = heartbeats, running = running}
end

local function claim_message(data, cfg)
  local ok, msg = pcall(cjson.decode, data)
  if not ok or not well_formed(msg) then
    return nil  -- the worker decodes it again and dead-letters it as poison
  end
  local spec = cfg.actors[msg.actor_name]
  local opts = msg.options
  if not spec or present(opts.eta) then
    return nil
  end
  local job_id = msg.message_id
  local job_type = present(opts.job_type) and opts.job_type or spec[1]
  local idem = present(opts.idempotency_key) and opts.idempotency_key or job_id
  local token = job_id
  if present(opts.delivery_token) then
    token = opts.delivery_token
  elseif present(opts.redis_message_id) then
    token = opts.redis_message_id
  end
  local time_limit = type(opts.time_limit) == "number" and opts.time_limit or spec[2]
  local job = cfg.ns .. ":job:" .. job_id
  return claim({job = job, events = job .. ":events",
    ledger = cfg.ns .. ":ledger:" .. job_type .. ":" .. string.sub(redis.sha1hex(idem), 1, 32),
    heartbeats = cfg.heartbeats, running = cfg.running, now = cfg.now, job_ttl = cfg.job_ttl, token = token,
    worker = cfg.worker, lease_ms = time_limit + cfg.margin, heartbeat_timeout = cfg.heartbeat_timeout,
    max_interruptions = cfg.max_interruptions, events_max = cfg.events_max, ledger_ttl = cfg.ledger_ttl,
    job_id = job_id, member = msg.queue_name .. "|" .. msg.actor_name .. "|" .. job_id, record = ""})
end

-- Pop the next message of a queue into this worker's acks set and append 6 entries to out: id, data, verdict
-- ("" = not claimed: the worker begins it), 3 verdict details. cfg nil: no claim. Returns false when empty.
local function pop_and_claim(queue, messages, acks, cfg, out)
  local id = redis.call("LPOP", queue)
  if not id then
    return false
  end
  redis.call("SADD", acks, id)
  local data = redis.call("HGET", messages, id) or ""
  local verdict = nil
  if cfg and data ~= "" then
    local ok, claimed = pcall(claim_message, data, cfg)
    if ok then
      verdict = claimed
    end  -- a claim that failed leaves the message to the worker's own begin, which reports the error
  end
  verdict = verdict or {}
  out[#out + 1] = id
  out[#out + 1] = data
  for i = 1, 4 do
    out[#out + 1] = verdict[i] or ""
  end
  return true
end
