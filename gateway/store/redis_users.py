"""Users in Redis: their records, the per-workspace and global name sets."""

from __future__ import annotations

from typing import Any, cast

from gateway.policy.model import User
from gateway.store.base import AlreadyExists
from gateway.store.codec import _invalidation, _pairs_dict, _s, _user, _user_fields
from gateway.store.redis_base import RedisBase, _repeatable, _wrap_errors


class RedisUsers(RedisBase):
    """Adding, reading, listing and removing users."""

    @_wrap_errors
    async def add_user(self, user: User) -> None:
        """Add a user; AlreadyExists if taken."""
        key = self.keys.user(user.username)
        fields = _user_fields(user)
        async with self.client.pipeline(transaction=True) as pipe:
            # HSETNX on a marker field makes the existence check atomic.
            pipe.hsetnx(key, "username", user.username)
            pipe.hsetnx(key, "created_at", fields["created_at"])
            res = await pipe.execute()
        if not res[0]:
            raise AlreadyExists(user.username)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast("dict[Any, Any]", fields))
            pipe.sadd(self.keys.all_users, user.username)
            pipe.sadd(self.keys.workspace(user.workspace, "users"), user.username)
            pipe.sadd(self.keys.workspaces, user.workspace)
            await pipe.execute()

    @_repeatable
    async def get_user(self, username: str) -> User | None:
        """One user, or None."""
        h = _pairs_dict(await self.client.hgetall(self.keys.user(username)))
        return _user(username, h) if "role" in h else None

    @_repeatable
    async def list_users(self, workspace: str | None) -> list[User]:
        """Users of a workspace (or all), sorted by name."""
        key = self.keys.workspace(workspace, "users") if workspace else self.keys.all_users
        names = sorted(_s(n) or "" for n in await self.client.smembers(key))
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.user(name))
            rows = await pipe.execute()
        return [_user(n, _pairs_dict(h)) for n, h in zip(names, rows) if h]

    @_wrap_errors
    async def remove_user(self, username: str, *, at: float) -> int | None:
        """Remove a user and revoke every token they own, atomically."""
        count = await self._scripts["remove_user"](
            keys=[self.keys.user(username), self.keys.owner_tokens(username),
                  self.keys.all_users],
            args=[repr(at), self.prefix, self.channel, _invalidation("user", username, at),
                  username],
        )
        return None if int(count) < 0 else int(count)
