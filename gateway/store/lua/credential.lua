-- Load a token with its owner and its workspace settings in one round trip.
-- KEYS[1] = token hash; ARGV[1] = key prefix.
-- Not cluster-safe (owner and settings keys are derived in the script); a
-- cluster deployment would co-locate them with a workspace hash tag.
local tok = redis.call('HGETALL', KEYS[1])
if #tok == 0 then return nil end
local owner, ws
for i = 1, #tok, 2 do
  if tok[i] == 'owner' then owner = tok[i + 1] end
  if tok[i] == 'workspace' then ws = tok[i + 1] end
end
local user = redis.call('HGETALL', ARGV[1] .. 'user:' .. owner)
local settings = redis.call('HGETALL', ARGV[1] .. 'ws:' .. ws .. ':settings')
return {tok, user, settings}
