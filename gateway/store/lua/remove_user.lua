#!lua
-- Remove a user and revoke every token they own, atomically (the user, the
-- workspace's user set and their tokens share the workspace's slot).
-- As revoke_all.lua, the caller read the owner index and passes each token's
-- key; if the index changed since (a token was created), nothing is written
-- and -2 tells the caller to read it again. -1: no such user.
-- KEYS[1] = user hash, KEYS[2] = owner index (set), KEYS[3] = workspace's users
-- (set), KEYS[4..] = the token hashes
-- ARGV[1] = at, ARGV[2] = channel, ARGV[3] = message, ARGV[4] = username,
-- ARGV[5..] = the tokens (in the order of KEYS[4..])
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = #KEYS - 3
if redis.call('SCARD', KEYS[2]) ~= n then return -2 end
for i = 1, n do
  if redis.call('SISMEMBER', KEYS[2], ARGV[4 + i]) == 0 then return -2 end
end
local at = tonumber(ARGV[1])
local count = 0
for i = 4, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'expires_at', 'revoked_at')
  if redis.call('EXISTS', KEYS[i]) == 1 and not f[2]
     and (not f[1] or f[1] == '' or tonumber(f[1]) > at) then
    redis.call('HSET', KEYS[i], 'revoked_at', ARGV[1])
    count = count + 1
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return count
