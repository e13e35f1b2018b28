"""What a workspace holds besides users and tokens: its settings and its audit list.

Both live under the workspace's hash tag. The ``workspaces`` set (its own
slot) names every workspace that holds anything, for listings across them; a
workspace is added to it before its first record is written, so a crash
between the two leaves at most a listed workspace with nothing in it.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.policy.model import AuditEvent, WorkspaceSettings
from gateway.store.base import AUDIT_MAX, newest_first
from gateway.store.codec import (
    _event,
    _event_doc,
    _flat,
    _invalidation,
    _pairs_dict,
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
            await self.client.hgetall(self.keys.ws(workspace, "settings"))))

    @_repeatable  # the same values again; a second invalidation only reloads caches
    async def put_settings(self, workspace: str, settings: WorkspaceSettings) -> None:
        """Replace a workspace's settings and push an invalidation, in one script."""
        await self.client.sadd(self.keys.workspaces, workspace)
        await self._scripts["settings"](
            keys=[self.keys.ws(workspace, "settings")],
            args=[self.channel, _invalidation("all", workspace, time.time()),
                  *_flat(_settings_fields(settings))])

    @_wrap_errors
    async def append_audit(self, event: AuditEvent) -> None:
        """Record an event in its workspace's list (or the security list), keeping AUDIT_MAX."""
        if event.workspace:
            await self.client.sadd(self.keys.workspaces, event.workspace)
        await self._scripts["audit"](keys=[self.keys.audit(event.workspace)],
                                     args=[_event_doc(event), AUDIT_MAX])

    @_repeatable
    async def list_audit(self, *, workspace: str | None, limit: int) -> list[AuditEvent]:
        """The newest events first (of every list, merged by time, for None)."""
        if workspace is not None:
            keys = [self.keys.audit(workspace)]
        else:
            # The security list once, last ("" is no workspace, listed or not).
            keys = [self.keys.audit(w) for w in await self._workspaces(None) if w]
            keys.append(self.keys.audit(""))
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.lrange(key, 0, limit - 1)
            rows: list[Any] = await pipe.execute()
        return newest_first([[_event(raw) for raw in events] for events in rows], limit)
