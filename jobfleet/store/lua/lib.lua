-- Shared by every script (the loader prepends it): server time, the job's attempt lines and the claim of one job.
-- Keys: a script declares in KEYS every key it knows before it runs. Jobs taken off a queue are only known inside
-- the script, so their hashes are named from the partition's job prefix (ARGV), whose hash tag puts them in the same
-- slot as the declared keys: one slot per call on one Redis and on Redis Cluster alike (docs/ARCHITECTURE.md).
if redis.replicate_commands then redis.replicate_commands() end -- Redis 6: effects replication, so TIME may precede writes

local function now_ms()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- One delivery's history line, field a<n> of the job hash (n counts every delivery of the job, replays included):
-- start|end|outcome|next due|attempt|replay|error type|error message. "attempts" counts the current life's attempts
-- (the retry budget: a replay starts it again); "tries" counts deliveries and names the lines.
local function attempt_line(start, finish, outcome, next_due, attempt, replay, err_type, err_message)
  return table.concat({start, finish, outcome, next_due or "", attempt or "", replay or "", err_type or "",
    err_message or ""}, "|")
end

-- Write a job hash anew with ``updates`` (field, value, ...) applied and the field ``drop`` left out, in one HSET.
-- Redis never turns a hash back into its compact listpack encoding once a value longer than
-- hash-max-listpack-value (64 bytes: the ~250-byte message) made it a hashtable, so dropping the message with HDEL
-- would leave a record kept for a day at ~3x its size (bench retention part). A hash with more fields than a
-- listpack holds (128) is updated in place instead.
local function rewrite(job, updates, drop)
  local all = redis.call("HGETALL", job)
  if #all > 256 then
    redis.call("HSET", job, unpack(updates))
    redis.call("HDEL", job, drop)
    return
  end
  local new = {}
  for i = 1, #updates, 2 do
    new[updates[i]] = true
  end
  local fields = {}
  for i = 1, #all, 2 do
    if all[i] ~= drop and not new[all[i]] then
      fields[#fields + 1] = all[i]
      fields[#fields + 1] = all[i + 1]
    end
  end
  for i = 1, #updates do
    fields[#fields + 1] = updates[i]
  end
  redis.call("DEL", job)
  redis.call("HSET", job, unpack(fields))
end

-- The set of actor names a worker can run, from a space-separated ARGV value.
local function name_set(names)
  local set = {}
  for name in string.gmatch(names, "%S+") do
    set[name] = true
  end
  return set
end

-- Give back what a job counted against its caller's quotas (submit.lua: flags "o" outstanding and bytes, "d"
-- delayed): "delayed" when it starts, "all" when it ends. Each count is given back once (the flags say what is left).
local function quota_release(job, counters, flags, size, what)
  if not flags or flags == "" then
    return ""
  end
  if string.find(flags, "d", 1, true) then
    redis.call("HINCRBY", counters, "delayed", -1)
  end
  local left = ""
  if what == "all" then
    if string.find(flags, "o", 1, true) then
      redis.call("HINCRBY", counters, "outstanding", -1)
      redis.call("HINCRBY", counters, "bytes", -(tonumber(size) or 0))
    end
  else
    left = string.gsub(flags, "d", "")
  end
  redis.call("HSET", job, "quota", left)
  return left
end

-- Claim one job taken off its queue for this worker: state check, actor check, fencing token, attempt history and
-- the running entry. c: job_prefix, queue (zset key), running (zset key), held_counts (hash key), queue_name, id,
-- worker, now, actors (set), hold_ms, held (list), quota_prefix.
-- Returns {id, token, attempt, try, replay, message, enqueued, due, now, quota flags, stored bytes, caller} for a job
-- to run, or nil when the job is not handed out:
-- gone or no longer waiting (cancelled, finished: dropped), or for an actor this worker lacks (held back on its
-- queue for hold_ms, so a worker that has the actor takes it: a rolling deploy loses nothing; its actor's name is
-- added to c.held so the worker can count and report it).
local function claim(c)
  local job = c.job_prefix .. c.id
  local f = redis.call("HMGET", job, "state", "msg", "actor", "token", "attempts", "enqueued", "due", "tries",
    "replays", "quota", "bytes", "caller")
  if f[1] ~= "queued" and f[1] ~= "retrying" then
    return nil
  end
  if not c.actors[f[3]] then
    redis.call("ZADD", c.queue, c.now + c.hold_ms, c.id)
    redis.call("HSET", job, "held", c.now)
    redis.call("HINCRBY", c.held_counts, c.queue_name .. "|" .. (f[3] or ""), 1)
    c.held[#c.held + 1] = f[3]
    return nil
  end
  local token = (tonumber(f[4]) or 0) + 1
  local attempt = (tonumber(f[5]) or 0) + 1
  local try = (tonumber(f[8]) or 0) + 1
  local replay = f[9] or "0"
  redis.call("HSET", job, "state", "running", "token", token, "attempts", attempt, "tries", try, "worker", c.worker,
    "started", c.now, "a" .. try, attempt_line(c.now, "", "running", "", attempt, replay))
  redis.call("ZADD", c.running, c.now, c.id .. ":" .. token)
  local quota = f[10] or ""
  if string.find(quota, "d", 1, true) then
    quota = quota_release(job, c.quota_prefix .. (f[12] or ""), quota, f[11], "delayed")
  end
  return {c.id, token, attempt, try, replay, f[2], f[6] or "", f[7] or "", c.now, quota, f[11] or "0", f[12] or ""}
end

-- Take up to n jobs that are due off a queue (score = when a job may start, ms) and claim them into out.
-- peek: look before popping, so an idle poll of a queue holding only future work writes nothing. At most n + 32 jobs
-- are popped per call, so a queue full of jobs that are dropped or held back costs a bounded script run.
local function take(c, n, peek, out)
  local taken = 0
  local budget = n + 32
  while taken < n and budget > 0 do
    budget = budget - 1
    if peek then
      local head = redis.call("ZRANGE", c.queue, 0, 0, "WITHSCORES")
      if #head == 0 or tonumber(head[2]) > c.now then
        return taken
      end
    end
    local popped = redis.call("ZPOPMIN", c.queue)
    if #popped == 0 then
      return taken
    end
    if tonumber(popped[2]) > c.now then
      redis.call("ZADD", c.queue, popped[2], popped[1])  -- not due yet: back where it was
      return taken
    end
    c.id = popped[1]
    local claimed = claim(c)
    if claimed then
      for _, v in ipairs(claimed) do
        out[#out + 1] = v
      end
      taken = taken + 1
    end
  end
  return taken
end

-- Put a claimed job back on its queue, unrun: the attempt is undone (it counts neither as an attempt nor as an
-- interruption) and the job keeps its place (its due time). For the worker's shutdown, a consumer restart, an
-- orphan found by reconcile and a job whose worker drained past its deadline. A job whose cancel was requested
-- meanwhile is cancelled instead (kept for ended_ttl seconds): a cancel wins over every redelivery.
local function give_back(job, queue, id, now, ended_ttl, quota_prefix)
  local f = redis.call("HMGET", job, "attempts", "due", "released", "tries", "cancel", "quota", "bytes", "caller")
  local attempt = tonumber(f[1]) or 1
  local try = tonumber(f[4]) or 1
  redis.call("HSET", job, "attempts", attempt - 1, "tries", try - 1, "worker", "",
    "released", (tonumber(f[3]) or 0) + 1, "released_at", now)
  redis.call("HDEL", job, "a" .. try, "drain")
  if f[5] then
    redis.call("HSET", job, "state", "cancelled", "finished", now)
    quota_release(job, quota_prefix .. (f[8] or ""), f[6], f[7], "all")
    redis.call("EXPIRE", job, ended_ttl)
  else
    redis.call("HSET", job, "state", "queued")
    redis.call("ZADD", queue, tonumber(f[2]) or now, id)
  end
end

-- Split a running entry "<job id>:<token>" (job ids never contain ':' after their last one: tokens are digits).
local function split_member(member)
  local id, token = string.match(member, "^(.*):(%d+)$")
  return id, token
end

-- Index a dead letter (by time, in the partition's index and its per-queue, per-type and per-caller ones) and trim
-- each index of entries older than the window, so listing stays O(page) and expired records leave no ids behind.
local function index_dead(indexes, id, now, window_ms)
  local oldest = "(" .. (now - window_ms)
  for _, index in ipairs(indexes) do
    redis.call("ZADD", index, now, id)
    redis.call("ZREMRANGEBYSCORE", index, "-inf", oldest)
  end
end
