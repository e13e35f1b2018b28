#!lua
-- Set (or, with an empty value, remove) one field of an existing token and
-- tell every process to drop its cached copy, in one step.
-- KEYS[1] = token hash
-- ARGV[1] = field, ARGV[2] = value ('' removes it), ARGV[3] = channel, ARGV[4] = message
-- Returns the record after (nil if unknown).
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return redis.call('HGETALL', KEYS[1])
