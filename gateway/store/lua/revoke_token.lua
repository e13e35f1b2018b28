#!lua
-- Revoke one token (idempotent) and push the invalidation in the same step,
-- so no process can keep serving a cached copy once this returns.
-- KEYS[1] = token hash; ARGV[1] = at, ARGV[2] = channel, ARGV[3] = message
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
if redis.call('HEXISTS', KEYS[1], 'revoked_at') == 0 then
  redis.call('HSET', KEYS[1], 'revoked_at', ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return redis.call('HGETALL', KEYS[1])
