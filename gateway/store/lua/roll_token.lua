#!lua
-- Roll a token's secret: the new keyed hash becomes the secret, the one it
-- replaces stays valid until ARGV[2] (policy/rolling.py), and every process
-- drops its cached copy, all in one step: no replica can keep the old record
-- (or miss the new hash) once this returns. A revoked token is left as it is.
-- KEYS[1] = token hash
-- ARGV[1] = new secret hash, ARGV[2] = previous secret valid until, ARGV[3] = at,
-- ARGV[4] = channel, ARGV[5] = message
-- Returns the record after (nil if unknown).
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
if redis.call('HEXISTS', KEYS[1], 'revoked_at') == 0 then
  local current = redis.call('HGET', KEYS[1], 'secret_hash')
  redis.call('HSET', KEYS[1], 'previous_secret_hash', current, 'secret_hash', ARGV[1],
             'previous_secret_until', ARGV[2], 'rolled_at', ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return redis.call('HGETALL', KEYS[1])
