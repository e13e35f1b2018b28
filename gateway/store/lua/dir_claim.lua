#!lua
-- Write a directory entry (where an id that arrives alone lives) if it is
-- absent, or if it still holds the claim the caller found stale.
-- Every entry carries a 'claim' field, new for each write, so a caller that
-- found an entry stale replaces exactly that entry and never a newer one;
-- and 'at', when it was written (Redis's clock), so a caller can tell an
-- entry another add is still completing from one a crash left behind.
-- KEYS[1] = the entry (hash)
-- ARGV[1] = the claim expected ('' = the entry must be absent)
-- ARGV[2..] = field, value pairs to write (with a new 'claim')
-- Returns {1} when written, else {0, the entry's fields, its age in ms}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local current = redis.call('HGETALL', KEYS[1])
local claim = redis.call('HGET', KEYS[1], 'claim') or ''
local free
if ARGV[1] == '' then free = #current == 0 else free = #current > 0 and claim == ARGV[1] end
if not free then
  local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0') or 0
  return {0, current, now - at}
end
redis.call('DEL', KEYS[1])
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'at', now, unpack(fields))
return {1}
