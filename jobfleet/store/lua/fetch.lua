-- Fetch up to N messages as (redis message id, data, claim) so that a message that cannot be decoded can still be
-- acked and dead-lettered by id instead of jamming the whole prefetch batch (stock fetch returns data only), and,
-- for ready queues, claim each message's attempt here (claim.lua, prepended) instead of in a round trip per job.
-- KEYS: 1 queue list, 2 queue messages hash, 3 this worker's acks set for the queue, 4 heartbeats zset,
--       5 running zset
-- ARGV: 1 prefetch, 2 worker id, 3 now ms, 4-12 claim configuration (claim_config in claim.lua; ARGV[4] "" = none)
-- Returns 6 entries per message: id, data, verdict ("" = not claimed: the worker begins it), 3 verdict details.
redis.call("ZADD", KEYS[4], ARGV[3], ARGV[2])
local cfg = claim_config(ARGV, 4, ARGV[2], ARGV[3], KEYS[4], KEYS[5])
local out = {}
for _ = 1, tonumber(ARGV[1]) do
  if not pop_and_claim(KEYS[1], KEYS[2], KEYS[3], cfg, out) then
    break
  end
end
return out
