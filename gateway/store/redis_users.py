"""Users in Redis: each record and its workspace's user set under the workspace's
hash tag, and a directory entry per username saying which workspace holds it.

Adding a user spans two slots (the directory entry, the workspace), so the
steps are ordered for a crash at any point: the workspace is listed first,
then the directory entry is claimed, then the user and the workspace's user
set are written in one script. An entry left without its user (a crash, or a
removal that stopped before releasing it) reads as "no such user", and the
next add of that name takes it over; nothing half-made answers 409 or lets
anyone in.
"""

from __future__ import annotations

from typing import Any

from gateway.policy.model import User
from gateway.store.base import AlreadyExists
from gateway.store.codec import _flat, _invalidation, _pairs_dict, _s, _user, _user_fields
from gateway.store.redis_base import RedisBase, _repeatable, _wrap_errors


class RedisUsers(RedisBase):
    """Adding, reading, listing and removing users."""

    async def _user_entry(self, username: str) -> dict[str, str]:
        return _pairs_dict(await self.client.hgetall(self.keys.user_dir(username)))

    @_wrap_errors
    async def add_user(self, user: User) -> None:
        """Add a user; AlreadyExists if the name is taken in any workspace."""
        name, ws = user.username, user.workspace
        entry = self.keys.user_dir(name)
        await self.client.sadd(self.keys.workspaces, ws)

        async def holds(holder: str) -> bool:
            return bool(await self.client.exists(self.keys.user(holder, name)))

        claim = await self._claim_entry(entry, ws, holds=holds, keep_own=False, taken=name)
        user_keys = [self.keys.user(ws, name), self.keys.ws(ws, "users")]
        if not await self._scripts["create_user"](
                keys=user_keys, args=[name, *_flat(_user_fields(user)), "claim", claim]):
            raise AlreadyExists(name)
        # An add of the same name into another workspace can take the entry
        # over only if this one stalled past the claim's grace: then that add
        # won, and this one takes its user back.
        if await self._entry_workspace(entry) != ws:
            await self._scripts["uncreate_user"](keys=user_keys, args=[name, claim])
            raise AlreadyExists(name)

    @_repeatable
    async def get_user(self, username: str) -> User | None:
        """One user, or None."""
        entry = await self._user_entry(username)
        if "workspace" not in entry:
            return None
        h = _pairs_dict(await self.client.hgetall(self.keys.user(entry["workspace"], username)))
        return _user(username, h) if "role" in h else None

    @_repeatable
    async def list_users(self, workspace: str | None) -> list[User]:
        """Users of a workspace (or all), sorted by name."""
        workspaces = await self._workspaces(workspace)
        async with self.client.pipeline(transaction=False) as pipe:
            for ws in workspaces:
                pipe.smembers(self.keys.ws(ws, "users"))
            name_sets: list[Any] = await pipe.execute()
        names = [(ws, _s(n) or "") for ws, members in zip(workspaces, name_sets)
                 for n in members]
        async with self.client.pipeline(transaction=False) as pipe:
            for ws, name in names:
                pipe.hgetall(self.keys.user(ws, name))
            rows = await pipe.execute()
        users = [_user(name, _pairs_dict(h)) for (_, name), h in zip(names, rows) if h]
        return sorted(users, key=lambda u: u.username)

    @_wrap_errors
    async def remove_user(self, username: str, *, at: float) -> int | None:
        """Remove a user and revoke every token they own, atomically."""
        entry = await self._user_entry(username)
        if "workspace" not in entry:
            return None
        ws = entry["workspace"]
        owned = self.keys.owner_tokens(ws, username)
        msg = _invalidation("user", username, at)

        async def keys_and_args() -> tuple[list[str], list[Any]]:
            tokens = sorted(_s(t) or "" for t in await self.client.smembers(owned))
            return ([self.keys.user(ws, username), owned, self.keys.ws(ws, "users"),
                     *(self.keys.token(ws, t) for t in tokens)],
                    [repr(at), self.channel, msg, username, *tokens])

        count = int(await self._script_retrying("remove_user", keys_and_args, stale=-2))
        # Released after the user is gone (or found gone: a stale entry), and
        # only if it is still the entry read above.
        await self._scripts["dir_release"](keys=[self.keys.user_dir(username)],
                                           args=[entry.get("claim", "")])
        return None if count < 0 else count
