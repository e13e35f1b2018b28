#!lua
-- Append an audit event to its capped list in one step.
-- KEYS[1] = the list (newest first); ARGV[1] = the event, ARGV[2] = how many to keep
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1
