-- Revoke every active token of a workspace, optionally of one type or owner.
-- Atomic: a token created before this script is revoked; one created after
-- it is untouched. Publishes one invalidation when anything changed.
-- KEYS[1] = workspace index (zset); ARGV[1] = at, ARGV[2] = type or '',
-- ARGV[3] = owner or '', ARGV[4] = prefix, ARGV[5] = channel, ARGV[6] = message
local at = tonumber(ARGV[1])
local count = 0
for _, token in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[4] .. 'tok:{' .. token .. '}'
  local f = redis.call('HMGET', key, 'type', 'owner', 'expires_at', 'revoked_at')
  if f[1] and not f[4]
     and (ARGV[2] == '' or f[1] == ARGV[2])
     and (ARGV[3] == '' or f[2] == ARGV[3])
     and (not f[3] or f[3] == '' or tonumber(f[3]) > at) then
    redis.call('HSET', key, 'revoked_at', ARGV[1])
    count = count + 1
  end
end
if count > 0 then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return count
