"""Tokens in Redis: records, the workspace and owner indexes, revocation, last use.

A token's record and indexes live under its workspace's hash tag (revoke-all
and user removal are one script each); a token id arrives alone, so its
directory entry (``dir:{tok:<token>}``: workspace and owner, written once
before the record) says where. Entries never change, so each process keeps
the ones it has read, and a credential load is one round trip once a token
has been seen.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, cast

import orjson

from gateway.policy.model import Credential, TokenRecord, TokenType
from gateway.policy.restrictions import TokenLimit
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
PLACES_KEPT = 100_000  # directory entries remembered per process (about 10 MB at most)


class RedisTokens(RedisBase):
    """Creating, loading, listing, revoking and touching tokens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._places: dict[str, tuple[str, str]] = {}

    async def _place(self, token: str) -> tuple[str, str] | None:
        """The token's workspace and owner, from its directory entry (None if unknown)."""
        found = self._places.get(token)
        if found is not None:
            return found
        return (await self._places_of([token])).get(token)

    async def _places_of(self, tokens: list[str]) -> dict[str, tuple[str, str]]:
        """Places of many tokens: the remembered ones, the others read in one pipeline."""
        known = {t: self._places[t] for t in tokens if t in self._places}
        missing = [t for t in tokens if t not in known]
        if missing:
            async with self.client.pipeline(transaction=False) as pipe:
                for t in missing:
                    pipe.hgetall(self.keys.token_dir(t))
                entries = await pipe.execute()
            for t, raw in zip(missing, entries):
                entry = _pairs_dict(raw)
                if "workspace" in entry:
                    known[t] = self._remember(t, entry["workspace"], entry.get("owner", ""))
        return known

    def _remember(self, token: str, workspace: str, owner: str) -> tuple[str, str]:
        if len(self._places) >= PLACES_KEPT:
            self._places.clear()
        place = self._places[token] = (workspace, owner)
        return place

    @_wrap_errors
    async def create_token(self, record: TokenRecord) -> None:
        """Store and index a new token atomically (its directory entry first)."""
        ws = record.workspace
        await self.client.sadd(self.keys.workspaces, ws)
        # An entry left by a crash before the script names a token that does
        # not exist: it is read as unknown (401) and takes nothing from anyone.
        claimed = await self._scripts["dir_claim"](
            keys=[self.keys.token_dir(record.token)],
            args=["", "workspace", ws, "owner", record.owner, "claim", "1"])
        if int(claimed[0]) != 1:
            current = _pairs(claimed[1])
            if (current.get("workspace"), current.get("owner")) != (ws, record.owner):
                raise AlreadyExists(record.token)
        ok = await self._scripts["create_token"](
            keys=[self.keys.token(ws, record.token), self.keys.ws(ws, "tokens"),
                  self.keys.owner_tokens(ws, record.owner)],
            args=[record.token, repr(record.created_at), *_flat(_record_fields(record))],
        )
        if not ok:
            raise AlreadyExists(record.token)
        self._remember(record.token, ws, record.owner)

    @_repeatable
    async def get_token(self, token: str) -> TokenRecord | None:
        """One token record, or None."""
        place = await self._place(token)
        if place is None:
            return None
        h = _pairs_dict(await self.client.hgetall(self.keys.token(place[0], token)))
        return _record(token, h) if h else None

    @_repeatable
    async def load_credential(self, token: str) -> Credential | None:
        """Token, owner and workspace settings in one round trip (once its place is known)."""
        place = await self._place(token)
        if place is None:
            return None
        ws, owner = place
        res = await self._scripts["credential"](
            keys=[self.keys.token(ws, token), self.keys.user(ws, owner),
                  self.keys.ws(ws, "settings")])
        if not res:
            return None
        record = _record(token, _pairs(res[0]))
        owner_h = _pairs(res[1])
        user = _user(record.owner, owner_h) if "role" in owner_h else None
        return Credential(record, user, _settings(_pairs(res[2])))

    @_repeatable
    async def list_tokens(
        self, workspace: str | None, *, owner: str | None = None
    ) -> list[TokenRecord]:
        """Tokens of a workspace (or all), oldest first."""
        workspaces = await self._workspaces(workspace)
        async with self.client.pipeline(transaction=False) as pipe:
            for ws in workspaces:
                pipe.zrange(self.keys.ws(ws, "tokens"), 0, -1)
            indexes: list[Any] = await pipe.execute()
        tokens = [(ws, _s(cast(bytes, t)) or "") for ws, members in zip(workspaces, indexes)
                  for t in members]
        async with self.client.pipeline(transaction=False) as pipe:
            for ws, t in tokens:
                pipe.hgetall(self.keys.token(ws, t))
            rows = await pipe.execute()
        records = [_record(t, _pairs_dict(h)) for (_, t), h in zip(tokens, rows) if h]
        if owner is not None:
            records = [r for r in records if r.owner == owner]
        return sorted(records, key=lambda r: (r.created_at, r.token))

    @_repeatable  # the script keeps the first revoked_at and publishes only then
    async def revoke_token(self, token: str, *, at: float) -> TokenRecord | None:
        """Revoke one token and publish the invalidation, atomically."""
        place = await self._place(token)
        if place is None:
            return None
        res = await self._scripts["revoke_token"](
            keys=[self.keys.token(place[0], token)],
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
        index = self.keys.ws(workspace, "tokens")
        head = [repr(at), token_type.value if token_type else "", owner or "", self.channel,
                _invalidation("all", workspace, at)]

        async def keys_and_args() -> tuple[list[str], list[Any]]:
            tokens = [_s(cast(bytes, t)) or "" for t in await self.client.zrange(index, 0, -1)]
            return [index, *(self.keys.token(workspace, t) for t in tokens)], [*head, *tokens]

        return int(await self._script_retrying("revoke_all", keys_and_args, stale=-1))

    @_repeatable  # last_used_at never moves backwards: a repeat writes nothing new
    async def touch(self, last_used: Mapping[str, float]) -> None:
        """Coalesced last_used_at writes: one script call per workspace (per slice)."""
        places = await self._places_of(list(last_used))
        by_ws: dict[str, list[tuple[str, float]]] = {}
        for token, ts in last_used.items():
            if token in places:
                by_ws.setdefault(places[token][0], []).append((token, ts))
        for ws, items in by_ws.items():
            # In slices, so one flush of many tokens never blocks Redis for long.
            for start in range(0, len(items), TOUCH_BATCH):
                batch = items[start:start + TOUCH_BATCH]
                await self._scripts["touch"](
                    keys=[self.keys.token(ws, t) for t, _ in batch],
                    args=[repr(ts) for _, ts in batch])

    # restrictions and rolling: fields of the token's record (``scopes``,
    # ``allowed_networks``, ``rate_limit`` as JSON; ``previous_secret_hash``,
    # ``previous_secret_until``, ``rolled_at``), each change publishing its
    # invalidation in the same script
    @_wrap_errors  # not repeatable: a second roll would end the old secret's grace
    async def roll_secret(self, token: str, *, secret_hash: str, previous_until: float,
                          at: float) -> TokenRecord | None:
        """Swap the secret hash and publish the invalidation, in one script."""
        place = await self._place(token)
        if place is None:
            return None
        res = await self._scripts["roll_token"](
            keys=[self.keys.token(place[0], token)],
            args=[secret_hash, repr(previous_until), repr(at), self.channel,
                  _invalidation("token", token, at)])
        return _record(token, _pairs(res)) if res else None

    @_repeatable  # the same value again; a second invalidation only reloads caches
    async def set_rate_limit(self, token: str, rate_limit: TokenLimit | None) -> TokenRecord | None:
        """Set or remove the ``rate_limit`` field and publish the invalidation, in one script."""
        place = await self._place(token)
        if place is None:
            return None
        value = "" if rate_limit is None else orjson.dumps(rate_limit.to_json()).decode()
        res = await self._scripts["set_token_field"](
            keys=[self.keys.token(place[0], token)],
            args=["rate_limit", value, self.channel, _invalidation("token", token, time.time())])
        return _record(token, _pairs(res)) if res else None
