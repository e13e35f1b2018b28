"""Trusted authentication in Redis: each workspace's key and org id, and the bearer
tokens minted with it."""

from __future__ import annotations

import math
import time
from typing import Any, cast

from gateway.policy.trusted import BearerCredential, BearerRecord, TrustedKey
from gateway.store.base import AlreadyExists
from gateway.store.codec import (
    _bearer,
    _bearer_fields,
    _flat,
    _invalidation,
    _pairs,
    _pairs_dict,
    _s,
    _trusted_fields,
    _trusted_key,
    _user,
)
from gateway.store.redis_base import RedisBase, _repeatable, _wrap_errors


class RedisTrusted(RedisBase):
    """Trusted-auth keys, org ids and bearer tokens."""

    @_wrap_errors
    async def enable_trusted_auth(self, key: TrustedKey) -> TrustedKey:
        """Store the key unless the workspace has one, and its org id (atomically)."""
        keys = [self.keys.workspace(key.workspace, "trusted"), self.keys.workspaces]
        org = ""
        if key.org_id is not None:
            org = str(key.org_id)
            keys.append(self.keys.org_id(key.org_id))
        res = await self._scripts["trusted_enable"](
            keys=keys, args=[key.workspace, org, self.prefix, *_flat(_trusted_fields(key))])
        if _s(res[0]) == "taken":
            raise AlreadyExists(f"org id {org}")
        return _trusted_key(key.workspace, _pairs(res[1]))

    @_repeatable
    async def get_trusted_key(self, workspace: str) -> TrustedKey | None:
        """A workspace's key, or None."""
        h = _pairs_dict(await self.client.hgetall(self.keys.workspace(workspace, "trusted")))
        return _trusted_key(workspace, h) if h else None

    @_repeatable
    async def trusted_key_for_org_id(self, org_id: int) -> TrustedKey | None:
        """The key of the workspace the org id's directory entry names, or None."""
        workspace = _s(await self.client.get(self.keys.org_id(org_id)))
        if workspace is None:
            return None
        key = await self.get_trusted_key(workspace)
        return key if key is not None and key.org_id == org_id else None

    @_wrap_errors
    async def disable_trusted_auth(self, workspace: str) -> TrustedKey | None:
        """Remove a workspace's key and org id, returning the key, in one script."""
        msg = _invalidation("all", workspace, time.time())  # cached bearers go at once
        old = await self._scripts["trusted_disable"](
            keys=[self.keys.workspace(workspace, "trusted")],
            args=[workspace, self.prefix, self.channel, msg])
        h = _pairs(old)
        return _trusted_key(workspace, h) if h else None

    @_repeatable  # the same fields again (expires_at, not the TTL, bounds the token)
    async def create_bearer(self, record: BearerRecord) -> None:
        """Store a bearer token with its lifetime as the key's TTL."""
        key = self.keys.bearer(record.token_hash)
        ttl_ms = max(1, math.ceil((record.expires_at - record.created_at) * 1000))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast("dict[Any, Any]", _bearer_fields(record)))
            pipe.pexpire(key, ttl_ms)
            await pipe.execute()

    @_repeatable
    async def load_bearer(self, token_hash: str) -> BearerCredential | None:
        """Bearer, user and the workspace's key generation in one script call."""
        res = await self._scripts["trusted_bearer"](
            keys=[self.keys.bearer(token_hash)], args=[self.prefix])
        if not res:
            return None
        record = _bearer(token_hash, _pairs(res[0]))
        owner_h = _pairs(res[1])
        owner = _user(record.user, owner_h) if "role" in owner_h else None
        return BearerCredential(record, owner, _s(res[2]))

    @_repeatable  # the script keeps the first revoked_at and publishes only then
    async def revoke_bearer(self, token_hash: str, *, at: float) -> BearerRecord | None:
        """Revoke one bearer token (idempotent), keeping its TTL."""
        res = await self._scripts["trusted_revoke"](
            keys=[self.keys.bearer(token_hash)],
            args=[repr(at), self.channel, _invalidation("bearer", token_hash, at)])
        return _bearer(token_hash, _pairs(res)) if res else None
