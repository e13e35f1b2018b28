#!lua
-- The user a bearer token was minted for and their workspace's current key
-- generation, in one round trip (both under the workspace's hash tag; the
-- caller read the bearer's own record first). The caller compares the
-- generations: a disabled (or re-enabled) key refuses every token minted
-- with it at once, without touching the tokens themselves.
-- KEYS[1] = user hash, KEYS[2] = the workspace's trusted-auth hash
return {redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[2], 'generation')}
