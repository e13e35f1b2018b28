-- Disable trusted authentication: remove the workspace's key, release its
-- org id and tell every process (cached bearers go at once), in one step.
-- KEYS[1] = the workspace's trusted-auth hash
-- ARGV[1] = workspace, ARGV[2] = key prefix, ARGV[3] = channel, ARGV[4] = message
-- Returns the removed fields (empty when it was not enabled).
-- The org id's directory key is derived in the script (not cluster-safe,
-- as credential.lua).
local old = redis.call('HGETALL', KEYS[1])
local org = redis.call('HGET', KEYS[1], 'org_id')
if org then
  local dir = ARGV[2] .. 'orgid:' .. org
  if redis.call('GET', dir) == ARGV[1] then redis.call('DEL', dir) end
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return old
