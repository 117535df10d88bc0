-- Accept a job: Idempotency-Key check-and-set, queue-depth backpressure, the job record (holding the encoded
-- message once) and its place on the queue, atomically. Idempotent: a re-run (a reply lost in a failover, a client
-- retry) finds the job it created and changes nothing, so one request never makes two jobs or two deliveries.
-- KEYS: 1 job hash, 2 queue zset, [3 idempotency record hash: only for requests with an Idempotency-Key]
-- ARGV: 1 job id, 2 delay ms, 3 request fingerprint, 4 idempotency ttl s, 5 max queue depth (0 = none),
--       6 write even when the job exists (1|0: the caller WAITs for replicas, and WAIT counts this call's writes),
--       7.. job hash field/value pairs (without the times: they are Redis's)
-- Returns {"created", job id, accepted ms} | {"existing", job id, fingerprint} | {"full", depth}
local idem = KEYS[3]
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
local max_depth = tonumber(ARGV[5])
if max_depth > 0 then
  local depth = redis.call("ZCARD", KEYS[2])
  if depth >= max_depth then
    return {"full", tostring(depth)}  -- every reply entry is a string (the client decodes them all)
  end
end
local now = now_ms()
local due = now + tonumber(ARGV[2])
local fields = {}
for i = 7, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call("HSET", KEYS[1], "state", "queued", "attempts", 0, "token", 0, "enqueued", now, "due", due, unpack(fields))
redis.call("ZADD", KEYS[2], due, ARGV[1])
if idem then
  redis.call("HSET", idem, "job", ARGV[1], "fp", ARGV[3])
  redis.call("EXPIRE", idem, ARGV[4])
end
return {"created", ARGV[1], tostring(now)}
