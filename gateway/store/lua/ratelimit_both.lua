#!lua
-- Two sliding windows in one step: the user's and a token's own
-- (policy.ratelimit.decide_both; tests/store/test_ratelimit_both_agreement.py
-- proves the two agree). Each window follows ratelimit.lua's rule; a request
-- is recorded in both or, if either is full, in neither, so a refused request
-- uses up no quota anywhere. One script: atomic across replicas, one round trip.
--
-- KEYS[1]  the user's window, KEYS[2] the token's own (sorted sets, scores in us)
-- ARGV[1], ARGV[2]  limit and window_us of KEYS[1]
-- ARGV[3], ARGV[4]  limit and window_us of KEYS[2]
-- ARGV[5]  now_us, optional (empty: Redis TIME, as in ratelimit.lua)
--
-- Returns {allowed1, count1, reset1, allowed2, count2, reset2, now_us}: per
-- window whether it alone has room, its entries after this request and the
-- microseconds until the entry blocking its next admission leaves.

local now
if ARGV[5] ~= nil and ARGV[5] ~= '' then
  now = tonumber(ARGV[5])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Each helper takes the index of its key in KEYS (so every key it touches is a declared one).
local function live(i, window)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  return redis.call('ZCARD', KEYS[i])
end

local function admit(i, count, window)
  -- Members unique even when two requests share a microsecond (as ratelimit.lua).
  local n = count
  while redis.call('ZADD', KEYS[i], 'NX', now, string.format('%.0f-%d', now, n)) == 0 do
    n = n + 1
  end
  redis.call('PEXPIRE', KEYS[i], math.ceil(window / 1000))
  return count + 1
end

local function reset(i, count, limit, window)
  if count == 0 then return 0 end
  local index = math.max(0, count - limit)
  local blocker = redis.call('ZRANGE', KEYS[i], index, index, 'WITHSCORES')
  return tonumber(blocker[2]) + window - now
end

local limit1, window1 = tonumber(ARGV[1]), tonumber(ARGV[2])
local limit2, window2 = tonumber(ARGV[3]), tonumber(ARGV[4])
local count1 = live(1, window1)
local count2 = live(2, window2)
local allowed1, allowed2 = count1 < limit1, count2 < limit2
if allowed1 and allowed2 then
  count1 = admit(1, count1, window1)
  count2 = admit(2, count2, window2)
end

return {allowed1 and 1 or 0, count1, reset(1, count1, limit1, window1),
        allowed2 and 1 or 0, count2, reset(2, count2, limit2, window2), now}
