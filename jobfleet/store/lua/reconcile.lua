-- After a lost reply (fetch or finish), a worker does not know which jobs a call claimed for it. It names the ones
-- it holds; every other running entry of this partition's queue that Redis has under its name is given back.
-- KEYS: 1 running zset, 2 queue zset
-- ARGV: 1 worker id, 2 job key prefix, 3 cancelled record retention s, 4 quota counters key prefix,
--       5.. running entries ("<id>:<token>") the worker holds
-- Returns how many were given back.
local now, released = now_ms(), 0
local held = {}
for i = 5, #ARGV do
  held[ARGV[i]] = true
end
for _, member in ipairs(redis.call("ZRANGE", KEYS[1], 0, -1)) do
  if not held[member] then
    local id, token = split_member(member)
    local job = ARGV[2] .. id
    local f = redis.call("HMGET", job, "worker", "token")
    if f[1] == ARGV[1] and f[2] == token then
      redis.call("ZREM", KEYS[1], member)
      give_back(job, KEYS[2], id, now, ARGV[3], ARGV[4])
      released = released + 1
    end
  end
end
return released
