"""Admin API for trusted authentication: ``/admin/api/workspaces/{ws}/trusted-auth``.

``PUT`` enables (a new key, 201; the current one, 200, if already enabled),
optionally with ``{"org_id": N}``, the workspace's numeric ThoughtSpot org
id (set or changed even when already enabled); ``GET`` reads the key and
org id back, ``DELETE`` disables (and drops the org id). Admins only: the operator
for any workspace, an admin user for their own. The admin-key middleware
has already checked the caller.
"""

from __future__ import annotations

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.admin.api import ACTOR_HEADER, read_body
from gateway.policy.permissions import Actor
from gateway.policy.tokenrequests import MAX_ORG_ID
from gateway.proxy.app import GATEWAY
from gateway.trusted.service import KeyStatus, TrustedAuth

PATH = "/admin/api/workspaces/{workspace}/trusted-auth"


class EnableTrustedAuth(BaseModel):
    """The optional ``PUT`` body."""

    model_config = ConfigDict(extra="forbid", strict=True)
    org_id: int | None = Field(default=None, ge=0, le=MAX_ORG_ID)


def _service(request: web.Request) -> TrustedAuth:
    return TrustedAuth.of(request.app[GATEWAY])


async def _actor(request: web.Request) -> Actor:
    lifecycle = request.app[GATEWAY].lifecycle
    return await lifecycle.resolve_actor(request.headers.get(ACTOR_HEADER))


def _respond(status: KeyStatus, code: int = 200) -> web.Response:
    # The body holds the key: no cache may keep it.
    return web.Response(body=orjson.dumps(status.to_json()), status=code,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


async def enable(request: web.Request) -> web.Response:
    """PUT: enable trusted authentication for the workspace (a body is optional)."""
    actor = await _actor(request)
    raw = await request.read()
    body = await read_body(request, EnableTrustedAuth) if raw.strip() else EnableTrustedAuth()
    status = await _service(request).enable(actor, request.match_info["workspace"], body.org_id)
    return _respond(status, 201 if status.created else 200)


async def show(request: web.Request) -> web.Response:
    """GET: the workspace's key, to copy it again."""
    return _respond(await _service(request).show(await _actor(request),
                                                 request.match_info["workspace"]))


async def disable(request: web.Request) -> web.Response:
    """DELETE: disable; the key and its bearer tokens stop working at once."""
    return _respond(await _service(request).disable(await _actor(request),
                                                    request.match_info["workspace"]))


def register_trusted_admin(app: web.Application) -> None:
    """Add the trusted-auth admin routes."""
    app.router.add_put(PATH, enable)
    app.router.add_get(PATH, show)
    app.router.add_delete(PATH, disable)
