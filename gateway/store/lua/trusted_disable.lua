#!lua
-- Disable trusted authentication: remove the workspace's key and tell every
-- process (cached bearers go at once), in one step. The caller then releases
-- the org id's directory entry (another slot) with the returned claim.
-- KEYS[1] = the workspace's trusted-auth hash
-- ARGV[1] = channel, ARGV[2] = message
-- Returns the removed fields (empty when it was not enabled).
local old = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return old
