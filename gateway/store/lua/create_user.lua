#!lua
-- Add a user to a workspace unless the name is taken there: the record and
-- the workspace's user set in one step, so no user is ever in one and not in
-- the other (a listing shows exactly the users that exist).
-- KEYS[1] = user hash, KEYS[2] = workspace's users (set)
-- ARGV[1] = username, ARGV[2..] = field, value pairs
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
