-- Fetch up to N messages as (redis message id, data) pairs, so that a message that cannot be decoded can still
-- be acked and dead-lettered by id instead of jamming the whole prefetch batch (stock fetch returns data only).
-- KEYS: 1 queue list, 2 queue messages hash, 3 this worker's acks set for the queue, 4 heartbeats zset
-- ARGV: 1 prefetch, 2 worker id, 3 now ms
redis.call("ZADD", KEYS[4], ARGV[3], ARGV[2])
local out = {}
for _ = 1, tonumber(ARGV[1]) do
  local id = redis.call("LPOP", KEYS[1])
  if not id then
    break
  end
  redis.call("SADD", KEYS[3], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call("HGET", KEYS[2], id) or ""
end
return out
