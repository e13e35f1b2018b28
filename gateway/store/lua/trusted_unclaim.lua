#!lua
-- Take an org id back from a workspace's key, if the key still records it
-- under the caller's claim (another workspace won the org id's entry).
-- KEYS[1] = the workspace's trusted-auth hash; ARGV[1] = the claim
if redis.call('HGET', KEYS[1], 'org_claim') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'org_id', 'org_claim')
return 1
