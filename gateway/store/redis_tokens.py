"""Tokens in Redis: records, the workspace and owner indexes, revocation, last use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from gateway.policy.model import Credential, TokenRecord, TokenType
from gateway.store.base import AlreadyExists
from gateway.store.codec import (
    _flat,
    _invalidation,
    _pairs,
    _pairs_dict,
    _record,
    _record_fields,
    _s,
    _settings,
    _user,
)
from gateway.store.redis_base import RedisBase, _repeatable, _wrap_errors

TOUCH_BATCH = 1000


class RedisTokens(RedisBase):
    """Creating, loading, listing, revoking and touching tokens."""

    @_wrap_errors
    async def create_token(self, record: TokenRecord) -> None:
        """Store and index a new token atomically."""
        ok = await self._scripts["create_token"](
            keys=[self.keys.token(record.token), self.keys.workspace(record.workspace, "tokens"),
                  self.keys.owner_tokens(record.owner)],
            args=[record.token, repr(record.created_at), *_flat(_record_fields(record))],
        )
        if not ok:
            raise AlreadyExists(record.token)
        await self.client.sadd(self.keys.workspaces, record.workspace)

    @_repeatable
    async def get_token(self, token: str) -> TokenRecord | None:
        """One token record, or None."""
        h = _pairs_dict(await self.client.hgetall(self.keys.token(token)))
        return _record(token, h) if h else None

    @_repeatable
    async def load_credential(self, token: str) -> Credential | None:
        """Token, owner and workspace settings in one round trip."""
        res = await self._scripts["credential"](keys=[self.keys.token(token)],
                                                args=[self.prefix])
        if not res:
            return None
        record = _record(token, _pairs(res[0]))
        owner_h = _pairs(res[1])
        owner = _user(record.owner, owner_h) if "role" in owner_h else None
        return Credential(record, owner, _settings(_pairs(res[2])))

    @_repeatable
    async def list_tokens(
        self, workspace: str | None, *, owner: str | None = None
    ) -> list[TokenRecord]:
        """Tokens of a workspace (or all), oldest first."""
        if workspace is None:
            workspaces = sorted(_s(w) or "" for w in
                                await self.client.smembers(self.keys.workspaces))
        else:
            workspaces = [workspace]
        tokens: list[str] = []
        for ws in workspaces:
            members = await self.client.zrange(self.keys.workspace(ws, "tokens"), 0, -1)
            tokens += [_s(cast(bytes, t)) or "" for t in members]
        async with self.client.pipeline(transaction=False) as pipe:
            for t in tokens:
                pipe.hgetall(self.keys.token(t))
            rows = await pipe.execute()
        records = [_record(t, _pairs_dict(h)) for t, h in zip(tokens, rows) if h]
        if owner is not None:
            records = [r for r in records if r.owner == owner]
        return sorted(records, key=lambda r: (r.created_at, r.token))

    @_repeatable  # the script keeps the first revoked_at and publishes only then
    async def revoke_token(self, token: str, *, at: float) -> TokenRecord | None:
        """Revoke one token and publish the invalidation, atomically."""
        res = await self._scripts["revoke_token"](
            keys=[self.keys.token(token)],
            args=[repr(at), self.channel, _invalidation("token", token, at)],
        )
        return _record(token, _pairs(res)) if res else None

    @_wrap_errors
    async def revoke_all(
        self,
        workspace: str,
        *,
        at: float,
        token_type: TokenType | None = None,
        owner: str | None = None,
    ) -> int:
        """Revoke every active token of a workspace (of a type/owner), atomically."""
        count = await self._scripts["revoke_all"](
            keys=[self.keys.workspace(workspace, "tokens")],
            args=[repr(at), token_type.value if token_type else "", owner or "",
                  self.prefix, self.channel, _invalidation("all", workspace, at)],
        )
        return int(count)

    @_repeatable  # last_used_at never moves backwards: a repeat writes nothing new
    async def touch(self, last_used: Mapping[str, float]) -> None:
        """Coalesced last_used_at writes in one script call."""
        items = list(last_used.items())
        # In slices, so one flush of many tokens never blocks Redis for long.
        for i in range(0, len(items), TOUCH_BATCH):
            batch = items[i:i + TOUCH_BATCH]
            await self._scripts["touch"](
                keys=[self.keys.token(t) for t, _ in batch], args=[repr(ts) for _, ts in batch]
            )
