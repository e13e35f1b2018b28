#!lua
-- Load a token with its owner and its workspace settings in one round trip.
-- All three live under the workspace's hash tag; the caller found the
-- workspace and the owner in the token's directory entry.
-- KEYS[1] = token hash, KEYS[2] = owner's user hash, KEYS[3] = settings hash
local tok = redis.call('HGETALL', KEYS[1])
if #tok == 0 then return nil end
return {tok, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3])}
