-- Remove a user and revoke every token they own, atomically.
-- KEYS[1] = user hash, KEYS[2] = owner index, KEYS[3] = all-users set
-- ARGV[1] = at, ARGV[2] = prefix, ARGV[3] = channel, ARGV[4] = message, ARGV[5] = username
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ws = redis.call('HGET', KEYS[1], 'workspace')
local at = tonumber(ARGV[1])
local count = 0
for _, token in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local key = ARGV[2] .. 'tok:{' .. token .. '}'
  local f = redis.call('HMGET', key, 'expires_at', 'revoked_at')
  if redis.call('EXISTS', key) == 1 and not f[2]
     and (not f[1] or f[1] == '' or tonumber(f[1]) > at) then
    redis.call('HSET', key, 'revoked_at', ARGV[1])
    count = count + 1
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[5])
redis.call('SREM', ARGV[2] .. 'ws:' .. ws .. ':users', ARGV[5])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return count
