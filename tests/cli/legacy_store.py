"""A store that writes key layout 1 exactly as tokengate did before layout 2.

Only what ``Lifecycle`` and ``TrustedAuth`` need to populate a store (add
users, create and revoke tokens, settings, audit, a trusted-auth key with its
org id); the key names and the steps are the old ``gateway/store/redis.py``'s,
so the migration tests start from what a real deployment holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from gateway.policy.model import AuditEvent, TokenRecord, User, WorkspaceSettings
from gateway.policy.trusted import TrustedKey
from gateway.store.base import AUDIT_MAX, AlreadyExists, Invalidation
from gateway.store.codec import (
    _pairs_dict,
    _record,
    _record_fields,
    _s,
    _settings,
    _trusted_key,
    _user,
)


class LegacyStore:
    """Layout 1 on one Redis (prefix ``tg:``)."""

    def __init__(self, url: str, prefix: str = "tg:") -> None:
        self.client = aioredis.Redis.from_url(url)
        self.p = prefix

    async def close(self) -> None:
        """Close the connection."""
        await self.client.aclose()

    async def check_layout(self) -> None:
        """Layout 1 recorded no version."""

    async def claim_key_check(self, value: str) -> str:
        """``tg:keycheck``, as before."""
        await self.client.set(self.p + "keycheck", value, nx=True)
        return _s(await self.client.get(self.p + "keycheck")) or value

    async def add_user(self, user: User) -> None:
        """The old two transactions: a marker, then the record and the sets."""
        key = f"{self.p}user:{user.username}"
        if not await self.client.hsetnx(key, "username", user.username):
            raise AlreadyExists(user.username)
        await self.client.hset(key, mapping={
            "role": user.role.value, "workspace": user.workspace,
            "created_at": repr(user.created_at), "generation": user.generation})
        await self.client.sadd(self.p + "users", user.username)
        await self.client.sadd(f"{self.p}ws:{user.workspace}:users", user.username)
        await self.client.sadd(self.p + "workspaces", user.workspace)

    async def add_half_made_user(self, username: str, at: float) -> None:
        """What a failure between the old two transactions left: a marker and no role."""
        await self.client.hset(f"{self.p}user:{username}",
                               mapping={"username": username, "created_at": repr(at)})

    async def get_user(self, username: str) -> User | None:
        """One user."""
        h = _pairs_dict(await self.client.hgetall(f"{self.p}user:{username}"))
        return _user(username, h) if "role" in h else None

    async def create_token(self, record: TokenRecord) -> None:
        """``tg:tok:{<token>}`` and its two indexes."""
        await self.client.hset(f"{self.p}tok:{{{record.token}}}",
                               mapping=cast("Mapping[Any, Any]", _record_fields(record)))
        await self.client.zadd(f"{self.p}ws:{record.workspace}:tokens",
                               {record.token: record.created_at})
        await self.client.sadd(f"{self.p}owner:{record.owner}:tokens", record.token)
        await self.client.sadd(self.p + "workspaces", record.workspace)

    async def get_token(self, token: str) -> TokenRecord | None:
        """One token."""
        h = _pairs_dict(await self.client.hgetall(f"{self.p}tok:{{{token}}}"))
        return _record(token, h) if h else None

    async def revoke_token(self, token: str, *, at: float) -> TokenRecord | None:
        """revoked_at on the record."""
        await self.client.hsetnx(f"{self.p}tok:{{{token}}}", "revoked_at", repr(at))
        return await self.get_token(token)

    async def get_settings(self, workspace: str) -> WorkspaceSettings:
        """``tg:ws:<ws>:settings``."""
        return _settings(_pairs_dict(await self.client.hgetall(
            f"{self.p}ws:{workspace}:settings")))

    async def put_settings(self, workspace: str, settings: WorkspaceSettings) -> None:
        """``tg:ws:<ws>:settings``."""
        await self.client.hset(f"{self.p}ws:{workspace}:settings", mapping={
            "member_tokens": "1" if settings.member_tokens else "0",
            "default_expiry_days": str(settings.default_expiry_days or ""),
            "max_expiry_days": str(settings.max_expiry_days or "")})
        await self.client.sadd(self.p + "workspaces", workspace)

    async def append_audit(self, event: AuditEvent) -> None:
        """``tg:ws:<ws>:audit`` (named in ``tg:audit:workspaces``) or ``tg:audit:security``."""
        doc = orjson.dumps({"at": event.at, "event": event.event, "actor": event.actor,
                            "subject": event.subject, "workspace": event.workspace,
                            "detail": event.detail})
        key = (f"{self.p}ws:{event.workspace}:audit" if event.workspace
               else self.p + "audit:security")
        await self.client.lpush(key, doc)
        await self.client.ltrim(key, 0, AUDIT_MAX - 1)
        if event.workspace:
            await self.client.sadd(self.p + "audit:workspaces", event.workspace)

    async def append_single_list_event(self, event: AuditEvent) -> None:
        """An event in ``tg:audit``, the one list of versions before per-workspace lists."""
        await self.client.lpush(self.p + "audit", orjson.dumps({
            "at": event.at, "event": event.event, "actor": event.actor,
            "subject": event.subject, "workspace": event.workspace, "detail": event.detail}))

    async def publish(self, message: Invalidation) -> None:
        """Nobody listens while the store is populated."""

    async def get_trusted_key(self, workspace: str) -> TrustedKey | None:
        """``tg:ws:<ws>:trusted``."""
        h = _pairs_dict(await self.client.hgetall(f"{self.p}ws:{workspace}:trusted"))
        return _trusted_key(workspace, h) if h else None

    async def enable_trusted_auth(self, key: TrustedKey) -> TrustedKey:
        """The key, ``tg:orgid:<n>`` naming its workspace."""
        ws = key.workspace
        await self.client.hset(f"{self.p}ws:{ws}:trusted", mapping={
            "generation": key.generation, "key": key.key_encrypted,
            "enabled_at": repr(key.enabled_at), "enabled_by": key.enabled_by})
        if key.org_id is not None:
            await self.client.hset(f"{self.p}ws:{ws}:trusted", "org_id", str(key.org_id))
            await self.client.set(f"{self.p}orgid:{key.org_id}", ws)
        await self.client.sadd(self.p + "workspaces", ws)
        found = await self.get_trusted_key(ws)
        assert found is not None
        return found
