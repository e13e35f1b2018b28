#!lua
-- Create a token record and index it, atomically (a concurrent revoke-all
-- sees either none of it or all of it: they share the workspace's slot).
-- KEYS[1] = token hash, KEYS[2] = workspace index (zset), KEYS[3] = owner index (set)
-- ARGV[1] = token, ARGV[2] = created_at, ARGV[3..] = field, value pairs
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
