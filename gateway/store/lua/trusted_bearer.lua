-- Load a bearer token with its user and its workspace's current key
-- generation in one round trip. The caller compares the generations: a
-- disabled (or re-enabled) key refuses every token minted with it at once,
-- without touching the tokens themselves.
-- KEYS[1] = bearer hash; ARGV[1] = key prefix.
-- Not cluster-safe (user and key are derived in the script), as credential.lua.
local b = redis.call('HGETALL', KEYS[1])
if #b == 0 then return nil end
local user, ws
for i = 1, #b, 2 do
  if b[i] == 'user' then user = b[i + 1] end
  if b[i] == 'workspace' then ws = b[i + 1] end
end
local owner = redis.call('HGETALL', ARGV[1] .. 'user:' .. user)
local generation = redis.call('HGET', ARGV[1] .. 'ws:' .. ws .. ':trusted', 'generation')
return {b, owner, generation}
