"""The admin API (``/admin/api``): users, tokens, settings, audit.

Handlers parse and validate, resolve the actor, call :class:`Lifecycle`
and render JSON. Bodies are pydantic models that forbid unknown fields, so
a wrong type or an unknown field is a 422 that names the field.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.lifecycle import Lifecycle
from gateway.policy.errors import BadRequest, Unprocessable
from gateway.policy.model import Role, TokenStatus, TokenType
from gateway.policy.permissions import WORKSPACE, Actor
from gateway.proxy.app import GATEWAY

ACTOR_HEADER = "X-Tokengate-Actor"
B = TypeVar("B", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewUser(_Body):
    username: str
    role: Literal["admin", "member"]
    workspace: str | None = None


class NewToken(_Body):
    type: Literal["workspace", "member", "personal", "trusted"]
    name: str
    expires_in_days: int | None = Field(default=None)
    workspace: str | None = None
    # Checked in policy.restrictions, so the API and the CLI say the same things.
    scopes: list[Any] | None = None
    allowed_networks: list[Any] | None = None
    rate_limit: dict[str, Any] | None = None


class RollToken(_Body):
    grace_seconds: int | None = None


class TokenRateLimit(_Body):
    rate_limit: dict[str, Any] | None


class MemberTokens(_Body):
    enabled: bool
    workspace: str | None = None


class TokenExpiry(_Body):
    default_expiry_days: int | None = None
    max_expiry_days: int | None = None
    workspace: str | None = None


class RevokeAll(_Body):
    type: Literal["workspace", "member", "personal"] | None = None
    workspace: str | None = None


async def read_body(request: web.Request, model: type[B]) -> B:
    """Parse a JSON object body into ``model``: 400 if not JSON, 422 naming a bad field."""
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise Unprocessable(f"{field}: {msg}", extra={"field": field}) from None


def _lifecycle(request: web.Request) -> Lifecycle:
    return request.app[GATEWAY].lifecycle


async def _actor(request: web.Request) -> Actor:
    return await _lifecycle(request).resolve_actor(request.headers.get(ACTOR_HEADER))


def _query_enum(request: web.Request, name: str, enum: type[Any]) -> Any:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise Unprocessable(f"{name}: must be one of {allowed}", extra={"field": name}) from None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def add_user(request: web.Request) -> web.Response:
    """POST /users."""
    actor = await _actor(request)
    body = await read_body(request, NewUser)
    user = await _lifecycle(request).add_user(actor, body.username, Role(body.role), body.workspace)
    return _json(user.to_json(), 201)


async def list_users(request: web.Request) -> web.Response:
    """GET /users."""
    actor = await _actor(request)
    users = await _lifecycle(request).list_users(actor, request.query.get("workspace"))
    return _json({"users": [u.to_json() for u in users]})


async def remove_user(request: web.Request) -> web.Response:
    """DELETE /users/{username}."""
    actor = await _actor(request)
    username = request.match_info["username"]
    revoked = await _lifecycle(request).remove_user(actor, username)
    return _json({"username": username, "removed": True, "tokens_revoked": revoked})


async def get_settings(request: web.Request) -> web.Response:
    """GET /settings."""
    actor = await _actor(request)
    ws, settings = await _lifecycle(request).workspace_settings(actor, request.query.get("workspace"))
    lc = _lifecycle(request)
    trusted = await lc.store.get_trusted_key(ws)
    return _json({
        "workspace": ws, **settings.to_json(),
        "effective_default_expiry_days":
            settings.default_expiry_days or lc.settings.tokens.default_expiry_days,
        "effective_max_expiry_days":
            settings.max_expiry_days or lc.settings.tokens.max_expiry_days,
        # The numeric ThoughtSpot org id token requests may name (set with trusted auth).
        "org_id": trusted.org_id if trusted is not None else None,
    })


async def put_member_tokens(request: web.Request) -> web.Response:
    """PUT /settings/member-tokens."""
    actor = await _actor(request)
    body = await read_body(request, MemberTokens)
    settings = await _lifecycle(request).set_member_tokens(actor, body.enabled, body.workspace)
    return _json(settings.to_json())


async def put_token_expiry(request: web.Request) -> web.Response:
    """PUT /settings/token-expiry."""
    actor = await _actor(request)
    body = await read_body(request, TokenExpiry)
    settings = await _lifecycle(request).set_expiry(
        actor, body.default_expiry_days, body.max_expiry_days, body.workspace)
    return _json(settings.to_json())


async def create_token(request: web.Request) -> web.Response:
    """POST /tokens: the only response that ever contains the secret."""
    actor = await _actor(request)
    body = await read_body(request, NewToken)
    lc = _lifecycle(request)
    new = await lc.create_token(
        actor, TokenType(body.type), body.name,
        expires_in_days=body.expires_in_days, workspace=body.workspace,
        scopes=body.scopes, allowed_networks=body.allowed_networks, rate_limit=body.rate_limit,
    )
    return _with_secret(new.record.to_json(lc.clock()), new.secret, 201)


def _with_secret(doc: dict[str, Any], secret: str, status: int) -> web.Response:
    """A token with its secret: never cached anywhere on the way."""
    doc["secret"] = secret
    response = _json(doc, status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def roll_token(request: web.Request) -> web.Response:
    """POST /tokens/{token}/roll: the new secret, shown this once."""
    actor = await _actor(request)
    body = await read_body(request, RollToken) if request.can_read_body else RollToken()
    lc = _lifecycle(request)
    new = await lc.roll_token(actor, request.match_info["token"], body.grace_seconds)
    return _with_secret(new.record.to_json(lc.clock()), new.secret, 200)


async def put_rate_limit(request: web.Request) -> web.Response:
    """PUT /tokens/{token}/rate-limit."""
    actor = await _actor(request)
    body = await read_body(request, TokenRateLimit)
    lc = _lifecycle(request)
    record = await lc.set_rate_limit(actor, request.match_info["token"], body.rate_limit)
    return _json(record.to_json(lc.clock()))


async def list_tokens(request: web.Request) -> web.Response:
    """GET /tokens?type=&status=."""
    token_type = _query_enum(request, "type", TokenType)
    status = _query_enum(request, "status", TokenStatus)
    actor = await _actor(request)
    lc = _lifecycle(request)
    records = await lc.list_tokens(actor, token_type=token_type, status=status,
                                   workspace=request.query.get("workspace"))
    now = lc.clock()
    return _json({"tokens": [r.to_json(now) for r in records]})


async def revoke_token(request: web.Request) -> web.Response:
    """DELETE /tokens/{token}."""
    actor = await _actor(request)
    lc = _lifecycle(request)
    record = await lc.revoke_token(actor, request.match_info["token"])
    return _json(record.to_json(lc.clock()))


async def revoke_all(request: web.Request) -> web.Response:
    """POST /tokens/revoke-all."""
    actor = await _actor(request)
    body = await read_body(request, RevokeAll) if request.can_read_body else RevokeAll()
    count = await _lifecycle(request).revoke_all(
        actor, TokenType(body.type) if body.type else None, body.workspace)
    return _json({"revoked": count})


async def audit(request: web.Request) -> web.Response:
    """GET /audit?limit=."""
    raw = request.query.get("limit", "100")
    # isdigit() alone also accepts digits like "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:
        raise Unprocessable("limit: must be an integer from 1 to 1000", extra={"field": "limit"})
    # Each workspace has its own list; without one the operator reads every
    # list (and the security list of events of no workspace) merged by time.
    workspace = request.query.get("workspace") or None
    if workspace is not None and not WORKSPACE.fullmatch(workspace):
        raise Unprocessable("workspace: not a valid workspace name", extra={"field": "workspace"})
    actor = await _actor(request)
    events = await _lifecycle(request).list_audit(actor, int(raw), workspace)
    return _json({"events": [e.to_json() for e in events]})


async def openapi(request: web.Request) -> web.Response:
    """The hand-kept OpenAPI 3.1 document of this API."""
    text = resources.files("gateway.admin").joinpath("openapi.json").read_bytes()
    return web.Response(body=text, content_type="application/json")


def register_api(app: web.Application) -> None:
    """Add the admin API routes."""
    r = app.router
    p = "/admin/api"
    r.add_post(p + "/users", add_user)
    r.add_get(p + "/users", list_users)
    r.add_delete(p + "/users/{username}", remove_user)
    r.add_get(p + "/settings", get_settings)
    r.add_put(p + "/settings/member-tokens", put_member_tokens)
    r.add_put(p + "/settings/token-expiry", put_token_expiry)
    r.add_post(p + "/tokens", create_token)
    r.add_get(p + "/tokens", list_tokens)
    r.add_post(p + "/tokens/revoke-all", revoke_all)
    r.add_delete(p + "/tokens/{token}", revoke_token)
    r.add_post(p + "/tokens/{token}/roll", roll_token)
    r.add_put(p + "/tokens/{token}/rate-limit", put_rate_limit)
    r.add_get(p + "/audit", audit)
    r.add_get(p + "/openapi.json", openapi)
