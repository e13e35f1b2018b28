#!lua
-- Coalesced last_used_at writes: only for tokens that still exist, and
-- never moving the time backwards.
-- KEYS[i] = token hash (all of one workspace), ARGV[i] = last used (epoch seconds)
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    local old = tonumber(redis.call('HGET', key, 'last_used_at') or '0')
    if tonumber(ARGV[i]) > old then redis.call('HSET', key, 'last_used_at', ARGV[i]) end
  end
end
return #KEYS
