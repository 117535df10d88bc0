-- Start an attempt for one delivery (the worker thread's fallback when fetch.lua did not claim it). One round trip.
-- KEYS: 1 job hash, 2 job events, 3 ledger hash, 4 broker heartbeats zset, 5 running zset
-- ARGV: 1 now ms, 2 job ttl s, 3 delivery token, 4 worker id, 5 lease ms, 6 heartbeat timeout ms,
--       7 max interrupted deliveries, 8 events max length, 9 ledger ttl s, 10 job id, 11 running member,
--       12 record json used when the status record is missing
return claim({job = KEYS[1], events = KEYS[2], ledger = KEYS[3], heartbeats = KEYS[4], running = KEYS[5],
  now = ARGV[1], job_ttl = ARGV[2], token = ARGV[3], worker = ARGV[4], lease_ms = ARGV[5],
  heartbeat_timeout = ARGV[6], max_interruptions = ARGV[7], events_max = ARGV[8], ledger_ttl = ARGV[9],
  job_id = ARGV[10], member = ARGV[11], record = ARGV[12]})
