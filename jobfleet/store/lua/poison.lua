-- Dead-letter a message that cannot be run (undecodable, unknown actor) and mark its job dead if it has one.
-- KEYS: 1 dlq entry, 2 dlq index, 3 dlq queue index, 4 job hash, 5 job events
-- ARGV: 1 entry json, 2 dlq ttl s, 3 now ms, 4 entry id, 5 error json, 6 events max
local nows = string.format("%.3f", tonumber(ARGV[3]) / 1000)
redis.call("SET", KEYS[1], ARGV[1], "EX", ARGV[2])
redis.call("ZADD", KEYS[2], ARGV[3], ARGV[4])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[4])
if redis.call("EXISTS", KEYS[4]) == 1 then
  redis.call("HSET", KEYS[4], "state", "dead", "error", ARGV[5], "finished_at", nows)
  redis.call("EXPIRE", KEYS[4], ARGV[2])
  redis.call("XADD", KEYS[5], "MAXLEN", ARGV[6], "*", "event", "dead", "at", nows,
    "data", cjson.encode({reason = "poison"}))
end
return 1
