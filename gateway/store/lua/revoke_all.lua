#!lua
-- Revoke every active token of a workspace, optionally of one type or owner.
-- Atomic: a token created before this script is revoked; one created after
-- it is untouched. Publishes one invalidation when anything changed.
--
-- Every key a script touches is declared, so the caller reads the index
-- first and passes each token's key. The index only ever grows, so it still
-- holds exactly those tokens if its size is unchanged and each is in it;
-- otherwise (a token was created in between) nothing is written and -1 tells
-- the caller to read the index again.
-- KEYS[1] = workspace index (zset), KEYS[2..] = the token hashes
-- ARGV[1] = at, ARGV[2] = type or '', ARGV[3] = owner or '', ARGV[4] = channel,
-- ARGV[5] = message, ARGV[6..] = the tokens (in the order of KEYS[2..])
local n = #KEYS - 1
if redis.call('ZCARD', KEYS[1]) ~= n then return -1 end
for i = 1, n do
  if not redis.call('ZSCORE', KEYS[1], ARGV[5 + i]) then return -1 end
end
local at = tonumber(ARGV[1])
local count = 0
for i = 2, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'type', 'owner', 'expires_at', 'revoked_at')
  if f[1] and not f[4]
     and (ARGV[2] == '' or f[1] == ARGV[2])
     and (ARGV[3] == '' or f[2] == ARGV[3])
     and (not f[3] or f[3] == '' or tonumber(f[3]) > at) then
    redis.call('HSET', KEYS[i], 'revoked_at', ARGV[1])
    count = count + 1
  end
end
if count > 0 then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return count
