-- Take and claim up to N due jobs of one queue partition for a worker (the consumer's fetch). A job that is due sits
-- on the queue with a score at or before now (Redis time): delayed, scheduled and retried jobs wait on the same
-- queue and become due without being moved. Not idempotent by nature (it pops): callers never retry it blindly;
-- after a lost reply the worker reconciles what the partition says it holds (reconcile.lua).
-- KEYS: 1 queue zset, 2 running zset, 3 held-back counts hash
-- ARGV: 1 how many, 2 worker id, 3 job key prefix of the partition, 4 actor names this worker runs (space-separated),
--       5 how long to hold back a job of an actor this worker lacks (ms), 6 queue name, 7 quota counters key prefix
-- Returns {claimed: 9 entries per job (claim in lib.lua), held: actor names}
local out, held = {}, {}
local c = {job_prefix = ARGV[3], queue = KEYS[1], running = KEYS[2], held_counts = KEYS[3], queue_name = ARGV[6],
  worker = ARGV[2], now = now_ms(), actors = name_set(ARGV[4]), hold_ms = tonumber(ARGV[5]), held = held,
  quota_prefix = ARGV[7]}
take(c, tonumber(ARGV[1]), true, out)
return {out, held}
