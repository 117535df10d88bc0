-- Fetch up to N messages as (redis message id, data, claim) so that a message that cannot be decoded can still be
-- acked and dead-lettered by id instead of jamming the whole prefetch batch (stock fetch returns data only), and,
-- for ready queues, claim each message's attempt here (claim.lua, prepended) instead of in a round trip per job.
-- KEYS: 1 queue list, 2 queue messages hash, 3 this worker's acks set for the queue, 4 heartbeats zset,
--       5 running zset
-- ARGV: 1 prefetch, 2 worker id, 3 now ms, 4 "1" to claim, else "", 5 namespace, 6 job ttl s, 7 ledger ttl s,
--       8 heartbeat timeout ms, 9 max interrupted deliveries, 10 events max length, 11 lease margin ms,
--       12 actors json {actor name: [default job type, time limit ms]}
-- Returns 6 entries per message: id, data, verdict ("" = not claimed: the worker begins it), 3 verdict details.
redis.call("ZADD", KEYS[4], ARGV[3], ARGV[2])
local actors = nil
if ARGV[4] == "1" then
  actors = cjson.decode(ARGV[12])
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

local function claim_message(data)
  local ok, msg = pcall(cjson.decode, data)
  if not ok or not well_formed(msg) then
    return nil  -- the worker decodes it again and dead-letters it as poison
  end
  local spec = actors[msg.actor_name]
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
  local job = ARGV[5] .. ":job:" .. job_id
  return claim({job = job, events = job .. ":events",
    ledger = ARGV[5] .. ":ledger:" .. job_type .. ":" .. string.sub(redis.sha1hex(idem), 1, 32),
    heartbeats = KEYS[4], running = KEYS[5], now = ARGV[3], job_ttl = ARGV[6], token = token, worker = ARGV[2],
    lease_ms = time_limit + tonumber(ARGV[11]), heartbeat_timeout = ARGV[8], max_interruptions = ARGV[9],
    events_max = ARGV[10], ledger_ttl = ARGV[7], job_id = job_id,
    member = msg.queue_name .. "|" .. msg.actor_name .. "|" .. job_id, record = ""})
end

local out = {}
for _ = 1, tonumber(ARGV[1]) do
  local id = redis.call("LPOP", KEYS[1])
  if not id then
    break
  end
  redis.call("SADD", KEYS[3], id)
  local data = redis.call("HGET", KEYS[2], id) or ""
  local verdict = nil
  if actors and data ~= "" then
    local ok, claimed = pcall(claim_message, data)
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
end
return out
