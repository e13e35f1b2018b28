-- Enable trusted authentication unless it already is, and give the workspace
-- its numeric org id: the checks and the writes are one step, so two
-- concurrent enables agree on a single key and no org id has two holders.
-- KEYS[1] = the workspace's trusted-auth hash, KEYS[2] = the workspaces set,
-- KEYS[3] = the org id's directory key (only when ARGV[2] is not '')
-- ARGV[1] = workspace, ARGV[2] = org id or '', ARGV[3] = key prefix,
-- ARGV[4..] = field, value pairs of a new key
-- Returns {'taken'} if another workspace holds the org id, else {'ok', fields}
-- (the new key, or the one already there, with its org id).
-- The directory key of an org id being replaced is derived in the script
-- (not cluster-safe, as credential.lua).
local ws, org = ARGV[1], ARGV[2]
if org ~= '' then
  local holder = redis.call('GET', KEYS[3])
  if holder and holder ~= ws then return {'taken'} end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  local fields = {}
  for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
  redis.call('SADD', KEYS[2], ws)
end
if org ~= '' then
  local old = redis.call('HGET', KEYS[1], 'org_id')
  if old and old ~= org then
    local old_key = ARGV[3] .. 'orgid:' .. old
    if redis.call('GET', old_key) == ws then redis.call('DEL', old_key) end
  end
  redis.call('HSET', KEYS[1], 'org_id', org)
  redis.call('SET', KEYS[3], ws)
end
return {'ok', redis.call('HGETALL', KEYS[1])}
