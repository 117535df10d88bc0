-- Record the running attempt's progress and tell the actor whether it was asked to stop. Fenced: an attempt that is
-- no longer the job's current one (its worker was presumed dead and the job runs elsewhere) is told so. The job keeps
-- its latest progress and a short log of the last reports (field progress_log, one "<ms> <percent> <message>" a line).
-- KEYS: 1 job hash
-- ARGV: 1 token, 2 percent, 3 message, 4 reports kept in the log
-- Returns 1 when a cancel was requested, 0 to go on, -1 when this attempt lost the job.
local f = redis.call("HMGET", KEYS[1], "token", "state", "cancel", "progress_log")
if f[1] ~= ARGV[1] or f[2] ~= "running" then
  return -1
end
local now = now_ms()
local line = now .. " " .. ARGV[2] .. " " .. string.gsub(ARGV[3], "\n", " ")
local log = f[4] and f[4] ~= "" and (f[4] .. "\n" .. line) or line
local kept, count = log, select(2, string.gsub(log, "\n", "\n")) + 1
while count > tonumber(ARGV[4]) do
  kept = string.sub(kept, string.find(kept, "\n", 1, true) + 1)
  count = count - 1
end
redis.call("HSET", KEYS[1], "progress", ARGV[2], "progress_message", ARGV[3], "progress_at", now, "progress_log", kept)
return f[3] and 1 or 0
