-- Recover the running jobs of dead workers in one queue partition: every running entry older than the heartbeat
-- timeout whose holder has not heartbeaten in this partition within it (Redis time) goes back on its queue. A job
-- whose worker drained past its deadline is given back (no interruption counted); one whose worker died counts an
-- interruption, and after max_interruptions it is dead-lettered (crash_loop) instead of looping forever. A job whose
-- cancel was requested while it ran is cancelled instead of delivered again. A long job of a live worker is left
-- alone however long it runs.
-- KEYS: 1 running zset, 2 queue zset, 3 heartbeats zset, 4 dlq index, 5 dlq index of the queue
-- ARGV: 1 heartbeat timeout ms, 2 max interruptions, 3 job key prefix, 4 dlq-by-type key prefix,
--       5 dlq-by-caller key prefix, 6 dead record retention s, 7 dlq window ms, 8 offset, 9 limit, 10 error json,
--       11 cancelled record retention s, 12 quota counters key prefix
-- Returns {recovered, dead-lettered, entries looked at}
local now = now_ms()
local timeout = tonumber(ARGV[1])
local recovered, dead = 0, 0
local members = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now - timeout, "LIMIT", tonumber(ARGV[8]),
  tonumber(ARGV[9]))
for _, member in ipairs(members) do
  local id, token = split_member(member)
  local job = ARGV[3] .. id
  local f = redis.call("HMGET", job, "worker", "token", "state", "attempts", "started", "drain", "interruptions",
    "type", "caller", "tries", "replays", "cancel", "quota", "bytes")
  if f[2] ~= token or f[3] ~= "running" then
    redis.call("ZREM", KEYS[1], member)  -- an entry its finish could not remove (or a record that expired)
  else
    local beat = redis.call("ZSCORE", KEYS[3], f[1])
    if not beat or now - tonumber(beat) >= timeout then
      redis.call("ZREM", KEYS[1], member)
      if f[12] then
        redis.call("HSET", job, "state", "cancelled", "finished", now, "worker", "", "a" .. (f[10] or "1"),
          attempt_line(f[5] or now, now, "cancelled", "", f[4], f[11] or "0", "WorkerLost",
            "cancelled while its worker was lost"))
        redis.call("HDEL", job, "drain")
        quota_release(job, ARGV[12] .. (f[9] or ""), f[13], f[14], "all")
        redis.call("EXPIRE", job, ARGV[11])
        recovered = recovered + 1
      elseif f[6] == "1" then
        give_back(job, KEYS[2], id, now, ARGV[11], ARGV[12])
        recovered = recovered + 1
      else
        local interruptions = (tonumber(f[7]) or 0) + 1
        local attempt = "a" .. (f[10] or "1")
        local line = attempt_line(f[5] or now, now, "interrupted", "", f[4], f[11] or "0", "WorkerLost",
          "the worker running this attempt stopped before it finished")
        if interruptions >= tonumber(ARGV[2]) then
          redis.call("HSET", job, "state", "dead", "finished", now, "worker", "", "interruptions", interruptions,
            "reason", "crash_loop", "error", ARGV[10], "traceback", "", attempt, line)
          redis.call("EXPIRE", job, ARGV[6])
          quota_release(job, ARGV[12] .. (f[9] or ""), f[13], f[14], "all")
          index_dead({KEYS[4], KEYS[5], ARGV[4] .. (f[8] or ""), ARGV[5] .. (f[9] or "")}, id, now, tonumber(ARGV[7]))
          dead = dead + 1
        else
          redis.call("HSET", job, "state", "queued", "worker", "", "interruptions", interruptions, attempt, line)
          redis.call("ZADD", KEYS[2], now, id)
          recovered = recovered + 1
        end
      end
    end
  end
end
return {recovered, dead, #members}
