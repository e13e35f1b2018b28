-- Enable trusted authentication unless it already is: the check and the
-- write are one step, so two concurrent enables agree on a single key.
-- KEYS[1] = the workspace's trusted-auth hash, KEYS[2] = the workspaces set
-- ARGV[1] = workspace, ARGV[2..] = field, value pairs
-- Returns the stored fields (the new key, or the one already there).
if redis.call('EXISTS', KEYS[1]) == 0 then
  local fields = {}
  for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('SADD', KEYS[2], ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
