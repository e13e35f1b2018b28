#!lua
-- Replace a workspace's settings and push the invalidation in the same step.
-- KEYS[1] = settings hash; ARGV[1] = channel, ARGV[2] = message,
-- ARGV[3..] = field, value pairs
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
