#!lua
-- Store a trusted-auth bearer token with its lifetime as the key's TTL, in
-- one step (never a record without its expiry).
-- KEYS[1] = bearer hash; ARGV[1] = TTL in ms, ARGV[2..] = field, value pairs
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
