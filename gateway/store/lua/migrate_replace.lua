#!lua
-- tokengate store migrate: replace a key with a copy of a layout-1 record in
-- one step, so a migration run again writes the same key again (never twice
-- the events of a list). Only the migration runs this.
-- KEYS[1] = the layout-2 key; ARGV[1] = 'hash' or 'list',
-- ARGV[2..] = field, value pairs (hash) or items, in order (list)
redis.call('DEL', KEYS[1])
local command = ARGV[1] == 'hash' and 'HSET' or 'RPUSH'
local chunk = {}
for i = 2, #ARGV do
  chunk[#chunk + 1] = ARGV[i]
  -- in chunks: unpack() takes only so many values at once
  if #chunk >= 1000 and (command == 'RPUSH' or #chunk % 2 == 0) then
    redis.call(command, KEYS[1], unpack(chunk))
    chunk = {}
  end
end
if #chunk > 0 then redis.call(command, KEYS[1], unpack(chunk)) end
return 1
