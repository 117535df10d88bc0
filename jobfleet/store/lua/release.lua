-- Undo claims of messages that are being put back on their queue without having run (worker shutdown, consumer
-- restart): the attempt never started, so it must not count as an attempt or as an interrupted delivery.
-- KEYS: 1 running zset
-- ARGV: 1 now ms, 2 events max length, 3 namespace, then per message: job id, attempt, token, ledger key, member
local nows = string.format("%.3f", tonumber(ARGV[1]) / 1000)
local released = 0
for i = 4, #ARGV, 5 do
  local job = ARGV[3] .. ":job:" .. ARGV[i]
  local attempt = tonumber(ARGV[i + 1])
  local ledger = ARGV[i + 3]
  if redis.call("HGET", job, "state") == "running" and tonumber(redis.call("HGET", job, "attempts")) == attempt then
    local hist = cjson.decode(redis.call("HGET", job, "history") or "[]")
    local last = hist[#hist]
    if last and last.attempt == attempt and not last.finished_at then
      hist[#hist] = nil
      local encoded = "[]"
      if #hist > 0 then
        encoded = cjson.encode(hist)
      end
      redis.call("HSET", job, "state", "queued", "attempts", attempt - 1, "history", encoded)
      if redis.call("HGET", ledger, "token") == ARGV[i + 2] then
        redis.call("DEL", ledger)
      end
      redis.call("ZREM", KEYS[1], ARGV[i + 4])
      redis.call("XADD", job .. ":events", "MAXLEN", ARGV[2], "*", "event", "released", "at", nows,
        "data", cjson.encode({attempt = attempt}))
      released = released + 1
    end
  end
end
return released
