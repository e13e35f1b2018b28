#!lua
-- Enable trusted authentication unless it already is, and (with an org id)
-- record the org id the caller has claimed in the directory, in one step:
-- two concurrent enables agree on a single key.
-- KEYS[1] = the workspace's trusted-auth hash
-- ARGV[1] = org id or '', ARGV[2] = the claim of its directory entry,
-- ARGV[3..] = field, value pairs of a new key
-- Returns {old org id, old org claim, fields}: the org id (and its claim)
-- replaced, '' if none, for the caller to release; fields of the key now.
if redis.call('EXISTS', KEYS[1]) == 0 then
  local fields = {}
  for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
end
local old, old_claim = '', ''
if ARGV[1] ~= '' then
  old = redis.call('HGET', KEYS[1], 'org_id') or ''
  old_claim = redis.call('HGET', KEYS[1], 'org_claim') or ''
  if old == ARGV[1] and old_claim == ARGV[2] then old, old_claim = '', '' end
  redis.call('HSET', KEYS[1], 'org_id', ARGV[1], 'org_claim', ARGV[2])
end
return {old, old_claim, redis.call('HGETALL', KEYS[1])}
