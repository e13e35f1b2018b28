"""What a workspace holds besides users and tokens: its settings and its audit list."""

from __future__ import annotations

import time
from typing import Any, cast

from gateway.policy.model import AuditEvent, WorkspaceSettings
from gateway.store.base import AUDIT_MAX, newest_first
from gateway.store.codec import (
    _event,
    _event_doc,
    _invalidation,
    _pairs_dict,
    _s,
    _settings,
    _settings_fields,
)
from gateway.store.redis_base import RedisBase, _repeatable, _wrap_errors


class RedisWorkspaces(RedisBase):
    """Workspace settings and audit events."""

    @_repeatable
    async def get_settings(self, workspace: str) -> WorkspaceSettings:
        """A workspace's settings."""
        return _settings(_pairs_dict(
            await self.client.hgetall(self.keys.workspace(workspace, "settings"))))

    @_repeatable  # the same values again; a second invalidation only reloads caches
    async def put_settings(self, workspace: str, settings: WorkspaceSettings) -> None:
        """Replace a workspace's settings and push an invalidation."""
        key = self.keys.workspace(workspace, "settings")
        msg = _invalidation("all", workspace, time.time())
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast("dict[Any, Any]", _settings_fields(settings)))
            pipe.sadd(self.keys.workspaces, workspace)
            pipe.publish(self.channel, msg)
            await pipe.execute()

    @_wrap_errors
    async def append_audit(self, event: AuditEvent) -> None:
        """Record an event in its workspace's list (or the security list), keeping AUDIT_MAX."""
        key = self.keys.audit(event.workspace)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(key, _event_doc(event))
            pipe.ltrim(key, 0, AUDIT_MAX - 1)
            if event.workspace:
                pipe.sadd(self.keys.audit_workspaces, event.workspace)
            await pipe.execute()

    @_repeatable
    async def list_audit(self, *, workspace: str | None, limit: int) -> list[AuditEvent]:
        """The newest events first (of every list, merged by time, for None)."""
        if workspace is not None:
            keys = [self.keys.audit(workspace)]
        else:
            names = await self.client.smembers(self.keys.audit_workspaces)
            keys = [self.keys.audit(_s(n) or "") for n in sorted(names)]
            keys.append(self.keys.audit(""))
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.lrange(key, 0, limit - 1)
            lists = [[_event(raw) for raw in rows] for rows in await pipe.execute()]
        lists.append(await self._legacy_audit(workspace, limit))
        return newest_first(lists, limit)

    async def _legacy_audit(self, workspace: str | None, limit: int) -> list[AuditEvent]:
        out: list[AuditEvent] = []
        start, page = 0, max(limit, 100)
        while len(out) < limit and start < AUDIT_MAX:
            rows = await self.client.lrange(self.keys.legacy_audit, start, start + page - 1)
            if not rows:
                break
            for raw in rows:
                event = _event(raw)
                if workspace is None or event.workspace == workspace:
                    out.append(event)
                    if len(out) >= limit:
                        break
            start += page
        return out
