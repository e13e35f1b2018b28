#!lua
-- Sliding-window-log rate limit: the decision of gateway/policy/ratelimit.py,
-- run inside Redis. tests/store/test_ratelimit_agreement.py proves the two agree.
--
-- Why a script: prune, count, admit and expire must happen as one step. Done
-- as separate commands, two replicas could both count 39 and both admit,
-- letting 41 through; a script runs atomically, so the limit is exact across
-- every gateway replica, and it costs one round trip.
--
-- Why TIME: the window is measured on the Redis clock, not on each replica's,
-- so replicas whose clocks are skewed still agree on which requests are in the
-- window. (Redis >= 5 replicates a script's effects, not the script, so reading
-- TIME before writing is allowed.) Tests pass an explicit now instead.
--
-- KEYS[1]  sorted set of admitted requests: score = timestamp in microseconds
-- ARGV[1]  limit            (integer >= 1)
-- ARGV[2]  window_us        (integer >= 1)
-- ARGV[3]  "hit" records an admitted request, "peek" only looks, "refund"
--          takes back the admission recorded at ARGV[5] (policy.ratelimit.refund)
-- ARGV[4]  now_us, optional (empty or absent: Redis TIME)
-- ARGV[5]  for "refund": the timestamp (us) the admission was recorded at
--
-- Returns {allowed (1/0), count, reset_us, now_us}: count is the number of
-- entries in the window after this request, reset_us the microseconds until
-- the entry that blocks the next admission leaves (policy.ratelimit.decision_from),
-- now_us the time used (an admitted hit's entry carries it, for a refund).
--
-- Timestamps are integers below 2^53, exact in Lua's doubles.

local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local mode = ARGV[3]
local record = mode == 'hit'

local now
if ARGV[4] ~= nil and ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Entries with ts <= now - window have left the window (inclusive range).
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if mode == 'refund' then
  -- Entries sharing a score are interchangeable (they leave the window
  -- together), so removing any one at that timestamp is exact.
  local at = ARGV[5]
  local taken = redis.call('ZRANGEBYSCORE', key, at, at, 'LIMIT', 0, 1)
  if taken[1] then
    redis.call('ZREM', key, taken[1])
  end
end
local count = redis.call('ZCARD', key)

local allowed = count < limit
if allowed and record then
  -- Members must be unique even when two requests share a microsecond; try
  -- suffixes until one is new (at most count tries, so bounded by limit).
  local n = count
  while redis.call('ZADD', key, 'NX', now, string.format('%.0f-%d', now, n)) == 0 do
    n = n + 1
  end
  count = count + 1
  -- The newest entry leaves the window after `window`, so an idle key
  -- vanishes then; memory per key is bounded by limit.
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
end

local reset = 0
if count > 0 then
  local index = math.max(0, count - limit)
  local blocker = redis.call('ZRANGE', key, index, index, 'WITHSCORES')
  reset = tonumber(blocker[2]) + window - now
end

return {allowed and 1 or 0, count, reset, now}
