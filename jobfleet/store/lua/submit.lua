-- Accept a job: Idempotency-Key check-and-set, backpressure (the queue's ready jobs) and the caller's quotas, the job
-- record (holding the encoded message once) and its place on the queue, atomically. Idempotent: a re-run (a reply
-- lost in a failover, a client retry) finds the job it created and changes nothing, so one request never makes two
-- jobs or two deliveries.
-- KEYS: 1 job hash, 2 queue zset, 3 the caller's quota counters hash, [4 idempotency record hash: only for requests
--       with an Idempotency-Key]
-- ARGV: 1 job id, 2 delay ms, 3 request fingerprint, 4 idempotency ttl s, 5 max ready jobs on the queue partition
--       (0 = none), 6 write even when the job exists (1|0: the caller WAITs for replicas, and WAIT counts this call's
--       writes), 7 the caller's most outstanding jobs, 8 most delayed jobs, 9 most stored bytes (0 = none for each;
--       all 0: nothing is counted), 10 this job's stored bytes, 11.. job hash field/value pairs (without the times)
-- Returns {"created", job id, accepted ms} | {"existing", job id, fingerprint} | {"full", depth}
--         | {"quota", limit name, current value}
local idem = KEYS[4]
if idem then
  local found = redis.call("HMGET", idem, "job", "fp")
  if found[1] then
    if ARGV[6] == "1" then
      redis.call("HSET", idem, "seen", now_ms())  -- replication is ordered: once replicas have this, they have the job
    end
    return {"existing", found[1], found[2] or ""}
  end
end
if redis.call("EXISTS", KEYS[1]) == 1 then
  if ARGV[6] == "1" then
    redis.call("HSET", KEYS[1], "seen", now_ms())
  end
  return {"created", ARGV[1], redis.call("HGET", KEYS[1], "enqueued") or ""}
end
local now = now_ms()
local delay = tonumber(ARGV[2])
local max_depth = tonumber(ARGV[5])
if max_depth > 0 then
  -- Only jobs that are due count: a tenant's far-future schedules never make the queue refuse everyone's work
  -- (those are bounded by the tenant's own delayed quota).
  local depth = redis.call("ZCOUNT", KEYS[2], "-inf", now)
  if depth >= max_depth then
    return {"full", tostring(depth)}  -- every reply entry is a string (the client decodes them all)
  end
end
local limits = {outstanding = tonumber(ARGV[7]), delayed = tonumber(ARGV[8]), bytes = tonumber(ARGV[9])}
local counted = limits.outstanding > 0 or limits.delayed > 0 or limits.bytes > 0
local size = tonumber(ARGV[10])
if counted then
  local c = redis.call("HMGET", KEYS[3], "outstanding", "delayed", "bytes")
  local outstanding, delayed, bytes = tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0
  if limits.outstanding > 0 and outstanding >= limits.outstanding then
    return {"quota", "outstanding", tostring(outstanding)}
  end
  if delay > 0 and limits.delayed > 0 and delayed >= limits.delayed then
    return {"quota", "delayed", tostring(delayed)}
  end
  if limits.bytes > 0 and bytes + size > limits.bytes then
    return {"quota", "bytes", tostring(bytes)}
  end
end
local due = now + delay
local fields = {}
for i = 11, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call("HSET", KEYS[1], "state", "queued", "attempts", 0, "token", 0, "enqueued", now, "due", due, unpack(fields))
redis.call("ZADD", KEYS[2], due, ARGV[1])
if counted then
  -- The job carries what it counts, so each end gives back exactly that (quota_release in lib.lua).
  local flags = delay > 0 and "od" or "o"
  redis.call("HSET", KEYS[1], "quota", flags, "bytes", size)
  redis.call("HINCRBY", KEYS[3], "outstanding", 1)
  redis.call("HINCRBY", KEYS[3], "bytes", size)
  if delay > 0 then
    redis.call("HINCRBY", KEYS[3], "delayed", 1)
  end
end
if idem then
  redis.call("HSET", idem, "job", ARGV[1], "fp", ARGV[3])
  redis.call("EXPIRE", idem, ARGV[4])
end
return {"created", ARGV[1], tostring(now)}
