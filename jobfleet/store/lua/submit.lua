-- Accept a job atomically: Idempotency-Key check-and-set, status record, first event, and the Dramatiq message.
-- Backpressure is checked here too, after the key (a retry of an accepted request gets its job even when the queue
-- is full) and before anything is written, so concurrent requests cannot overshoot the depth limit.
-- KEYS: 1 job hash, 2 job events, 3 queue list (or .DQ), 4 queue messages hash, 5 idempotency key ("" = none),
--       6 messages hash of the queue's other half (.DQ when 4 is the ready queue, and the reverse)
-- ARGV: 1 job ttl s, 2 now s, 3 redis message id, 4 encoded message, 5 request fingerprint, 6 idempotency ttl s,
--       7 events max length, 8 job id, 9 event data json, 10 max queue depth (0 = none),
--       11.. job hash field/value pairs
local existing = nil
if KEYS[5] ~= "" then
  existing = redis.call("GET", KEYS[5])
  if existing then
    return {"existing", existing}
  end
end
local max_depth = tonumber(ARGV[10])
if max_depth > 0 then
  local depth = redis.call("HLEN", KEYS[4]) + redis.call("HLEN", KEYS[6])
  if depth >= max_depth then
    return {"full", tostring(depth)}
  end
end
if KEYS[5] ~= "" then
  redis.call("SET", KEYS[5], ARGV[8] .. " " .. ARGV[5], "EX", ARGV[6])
end
local fields = {}
for i = 11, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call("HSET", KEYS[1], unpack(fields))
redis.call("EXPIRE", KEYS[1], ARGV[1])
redis.call("XADD", KEYS[2], "MAXLEN", ARGV[7], "*", "event", "accepted", "at", ARGV[2], "data", ARGV[9])
redis.call("EXPIRE", KEYS[2], ARGV[1])
redis.call("HSET", KEYS[4], ARGV[3], ARGV[4])
redis.call("RPUSH", KEYS[3], ARGV[3])
return {"created", ARGV[8]}
