"""Trusted authentication in Redis: each workspace's key (under its hash tag), the
org-id directory, and the bearer tokens minted with a key (each its own tag).

Giving a workspace an org id spans two slots. The directory entry is claimed
first and the workspace's key records it second; an org id the workspace
gives up is released last. A crash in between leaves an entry naming a
workspace whose key does not record that org id: lookups by it answer
nothing (they check the key's own org id), and the next workspace to claim
it takes the entry over.
"""

from __future__ import annotations

import math
import time

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
        """Store the key unless the workspace has one, and give it its org id."""
        ws = key.workspace
        await self.client.sadd(self.keys.workspaces, ws)
        org, claim = "", ""
        if key.org_id is not None:
            org, claim = str(key.org_id), await self._claim_org(key.org_id, ws)
        res = await self._scripts["trusted_enable"](
            keys=[self.keys.ws(ws, "trusted")], args=[org, claim, *_flat(_trusted_fields(key))])
        old_org, old_claim = _s(res[0]) or "", _s(res[1]) or ""
        if old_org and old_org != org:
            await self._release_org(int(old_org), old_claim)
        if key.org_id is not None:
            await self._confirm_org(key.org_id, ws, claim)
        return _trusted_key(ws, _pairs(res[2]))

    async def _claim_org(self, org_id: int, ws: str) -> str:
        """Point the org id's directory entry at ``ws``; AlreadyExists if another holds it."""
        async def holds(holder: str) -> bool:
            found = await self.client.hget(self.keys.ws(holder, "trusted"), "org_id")
            return _s(found) == str(org_id)

        return await self._claim_entry(self.keys.org_dir(org_id), ws, holds=holds,
                                       keep_own=True, taken=f"org id {org_id}")

    async def _confirm_org(self, org_id: int, ws: str, claim: str) -> None:
        """After the key recorded the org id: the entry must still name ``ws``.

        A disable of this workspace running alongside may have released it
        (it is written again), and only a claim stalled past its grace can
        have lost it to another workspace (the key gives the org id back).
        """
        entry = self.keys.org_dir(org_id)
        holder = await self._entry_workspace(entry)
        if holder is None:
            await self._scripts["dir_claim"](
                keys=[entry], args=["", "workspace", ws, "claim", claim])
            holder = await self._entry_workspace(entry)
        if holder != ws:
            await self._scripts["trusted_unclaim"](
                keys=[self.keys.ws(ws, "trusted")], args=[claim])
            raise AlreadyExists(f"org id {org_id}")

    async def _release_org(self, org_id: int, claim: str) -> None:
        await self._scripts["dir_release"](keys=[self.keys.org_dir(org_id)], args=[claim])

    @_repeatable
    async def get_trusted_key(self, workspace: str) -> TrustedKey | None:
        """A workspace's key, or None."""
        h = _pairs_dict(await self.client.hgetall(self.keys.ws(workspace, "trusted")))
        return _trusted_key(workspace, h) if h else None

    @_repeatable
    async def trusted_key_for_org_id(self, org_id: int) -> TrustedKey | None:
        """The key of the workspace the org id's directory entry names, or None."""
        entry = _pairs_dict(await self.client.hgetall(self.keys.org_dir(org_id)))
        if "workspace" not in entry:
            return None
        key = await self.get_trusted_key(entry["workspace"])
        return key if key is not None and key.org_id == org_id else None

    @_wrap_errors
    async def disable_trusted_auth(self, workspace: str) -> TrustedKey | None:
        """Remove a workspace's key (and publish that) in one script, then its org id."""
        msg = _invalidation("all", workspace, time.time())  # cached bearers go at once
        old = _pairs(await self._scripts["trusted_disable"](
            keys=[self.keys.ws(workspace, "trusted")], args=[self.channel, msg]))
        if old.get("org_id"):
            await self._release_org(int(old["org_id"]), old.get("org_claim", ""))
        return _trusted_key(workspace, old) if old else None

    @_repeatable  # the same fields again (expires_at, not the TTL, bounds the token)
    async def create_bearer(self, record: BearerRecord) -> None:
        """Store a bearer token with its lifetime as the key's TTL."""
        ttl_ms = max(1, math.ceil((record.expires_at - record.created_at) * 1000))
        await self._scripts["bearer_create"](
            keys=[self.keys.bearer(record.token_hash)],
            args=[ttl_ms, *_flat(_bearer_fields(record))])

    @_repeatable
    async def load_bearer(self, token_hash: str) -> BearerCredential | None:
        """The bearer, then its user and workspace's key generation in one script call."""
        h = _pairs_dict(await self.client.hgetall(self.keys.bearer(token_hash)))
        if not h:
            return None
        record = _bearer(token_hash, h)
        ws = record.workspace
        res = await self._scripts["trusted_bearer"](
            keys=[self.keys.user(ws, record.user), self.keys.ws(ws, "trusted")])
        owner_h = _pairs(res[0])
        owner = _user(record.user, owner_h) if "role" in owner_h else None
        return BearerCredential(record, owner, _s(res[1]))

    @_repeatable  # the script keeps the first revoked_at and publishes only then
    async def revoke_bearer(self, token_hash: str, *, at: float) -> BearerRecord | None:
        """Revoke one bearer token (idempotent), keeping its TTL."""
        res = await self._scripts["trusted_revoke"](
            keys=[self.keys.bearer(token_hash)],
            args=[repr(at), self.channel, _invalidation("bearer", token_hash, at)])
        return _bearer(token_hash, _pairs(res)) if res else None
