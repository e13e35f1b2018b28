#!lua
-- Take back a user this process just added, if it is still that one (its
-- claim): used when another add of the same name won the directory entry.
-- KEYS[1] = user hash, KEYS[2] = workspace's users (set)
-- ARGV[1] = username, ARGV[2] = the claim the user was added with
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
