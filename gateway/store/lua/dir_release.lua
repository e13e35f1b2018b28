#!lua
-- Delete a directory entry if it still holds the caller's claim (a newer
-- entry for the same id, written meanwhile, stays).
-- KEYS[1] = the entry (hash); ARGV[1] = the claim
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
