-- A worker stopping with attempts still running past its drain deadline marks them: whoever recovers them after the
-- worker exits gives them back (give_back in lib.lua) instead of counting an interruption, so deploys and scale-downs
-- during a long job never dead-letter it as crash_loop. Fenced by token; idempotent.
-- KEYS: 1 running zset
-- ARGV: 1 job key prefix, then pairs of (job id, token)
-- Returns how many were marked.
local marked = 0
for i = 2, #ARGV, 2 do
  if redis.call("ZSCORE", KEYS[1], ARGV[i] .. ":" .. ARGV[i + 1]) then
    redis.call("HSET", ARGV[1] .. ARGV[i], "drain", 1)
    marked = marked + 1
  end
end
return marked
