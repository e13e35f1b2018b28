"""The ThoughtSpot-compatible token-request endpoints on the proxy listener.

They are public routes: the authenticate middleware lets them through
without credentials, and each handler checks the ``secret_key`` (or, to
revoke or validate, the bearer token itself). Bodies are read here and
never logged; no error repeats a value from the body. Token endpoints
tokengate does not implement answer 501 naming themselves, rather than
falling through to the proxy's 401, which would read as a bad credential.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from gateway.policy import tokenrequests, trusted
from gateway.policy.authheader import BearerCredentials, parse_authorization
from gateway.policy.errors import BadRequest, Forbidden, RequestTimeout, Unauthenticated
from gateway.policy.model import Identity
from gateway.policy.tokenrequests import NotImplementedHere
from gateway.proxy.app import GATEWAY
from gateway.proxy.state import CLIENT
from gateway.runtime import Gateway, PublicRoute

if TYPE_CHECKING:
    from gateway.trusted.service import TrustedAuth

V2_TOKEN = "/api/rest/2.0/auth/token/full"
V2_REVOKE = "/api/rest/2.0/auth/token/revoke"
V2_VALIDATE = "/api/rest/2.0/auth/token/validate"
V2_NOT_IMPLEMENTED = {
    "/api/rest/2.0/auth/token/object": "trusted-token-object",
    "/api/rest/2.0/auth/token/custom": "trusted-token-custom",
}
V1_TOKEN = "/callosum/v1/tspublic/v1/session/auth/token"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _client(request: web.Request) -> str:
    return request.get(CLIENT) or request.remote or "unknown"


def _deadline(request: web.Request) -> float:
    return request.app[GATEWAY].settings.proxy.body_timeout_seconds


async def _json_body(request: web.Request, *, optional: bool = False) -> Any:
    # A token request is a few hundred bytes: the whole body must arrive
    # within the body timeout, or a trickling client would hold a
    # connection the guard cannot evict (it has a request in flight).
    try:
        async with asyncio.timeout(_deadline(request)):
            raw = await request.read()
    except TimeoutError:
        raise RequestTimeout("the request body arrived too slowly") from None
    if optional and not raw.strip():
        return {}  # ThoughtSpot's clients revoke with the bearer alone, no body
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON") from None


async def _form_body(request: web.Request) -> dict[str, str]:
    if request.content_type not in FORM_TYPES:
        raise BadRequest("the body must be a form (application/x-www-form-urlencoded)")
    try:
        async with asyncio.timeout(_deadline(request)):
            form = await request.post()
    except TimeoutError:
        raise RequestTimeout("the request body arrived too slowly") from None
    return {name: value for name, value in form.items() if isinstance(value, str)}


class TokenEndpoints:
    """Handlers bound to one gateway and its trusted-auth service."""

    def __init__(self, gw: Gateway, service: TrustedAuth) -> None:
        self.gw = gw
        self.service = service
        self.config = gw.settings.trusted_auth

    async def token_full(self, request: web.Request) -> web.Response:
        """POST /api/rest/2.0/auth/token/full: JSON in, the token and its times out."""
        req = tokenrequests.token_request_from_json(
            await _json_body(request),
            default_workspace=self.gw.settings.default_workspace,
            default_validity=self.config.default_validity_seconds,
            max_validity=self.config.max_validity_seconds,
        )
        minted = await self.service.mint(req, _client(request), "v2")
        doc = trusted.token_response(minted.token, minted.user, minted.record)
        return web.Response(body=orjson.dumps(doc), content_type="application/json",
                            headers=NO_STORE)

    async def session_token(self, request: web.Request) -> web.Response:
        """POST /callosum/v1/tspublic/v1/session/auth/token: a form in, the token as text."""
        req = tokenrequests.token_request_from_form(
            await _form_body(request),
            default_workspace=self.gw.settings.default_workspace,
            default_validity=self.config.default_validity_seconds,
        )
        minted = await self.service.mint(req, _client(request), "v1")
        return web.Response(text=minted.token, content_type="text/plain", headers=NO_STORE)

    async def revoke(self, request: web.Request) -> web.Response:
        """POST /api/rest/2.0/auth/token/revoke: with the key, or with the token itself."""
        req = tokenrequests.revoke_request_from_json(
            await _json_body(request, optional=True),
            default_workspace=self.gw.settings.default_workspace)
        if req.secret_key is not None:
            await self.service.revoke_with_key(req, _client(request), "revoke")
            return web.Response(status=204)
        token, identity = await self._own_bearer(
            request, req.token, "revoke", "send the bearer token to revoke, or the secret_key")
        if req.user is not None and req.user != identity.user:
            raise Forbidden("a bearer token can revoke only itself (user_identifier names "
                            "another user); use the secret_key")
        await self.service.revoke_own(token, identity)
        return web.Response(status=204)

    async def validate(self, request: web.Request) -> web.Response:
        """POST /api/rest/2.0/auth/token/validate: the presented bearer's times, user and org."""
        named = tokenrequests.validate_request_from_json(await _json_body(request, optional=True))
        token, _ = await self._own_bearer(
            request, named, "validate", "send the bearer token to validate in Authorization")
        doc = await self.service.validation(token)
        return web.Response(body=orjson.dumps(doc), content_type="application/json",
                            headers=NO_STORE)

    async def _own_bearer(self, request: web.Request, named: str | None, action: str,
                          missing: str) -> tuple[str, Identity]:
        """The bearer in Authorization and who it acts as; ``named`` must be it, if given."""
        header = request.headers.get("Authorization")
        if header is None or not header.strip().lower().startswith("bearer "):
            raise Unauthenticated(missing, reason="malformed")
        # The authenticator applies the usual checks, metrics and failure limit.
        identity = await self.gw.authenticator(header, _client(request))
        presented = parse_authorization(header)
        assert isinstance(presented, BearerCredentials)
        if named is not None and not hmac.compare_digest(named.encode(),
                                                         presented.token.encode()):
            raise Forbidden(f"a bearer token can {action} only itself"
                            + ("; use the secret_key" if action == "revoke" else ""))
        return presented.token, identity


def _not_implemented(path: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        raise NotImplementedHere(
            f"{path} is not implemented by tokengate, which mints full-access tokens only "
            f"(POST {V2_TOKEN})", extra={"endpoint": path})
    return handler


def public_routes(gw: Gateway, service: TrustedAuth) -> list[PublicRoute]:
    """The token-request routes, for the proxy listener."""
    endpoints = TokenEndpoints(gw, service)
    return [
        PublicRoute("POST", V2_TOKEN, endpoints.token_full, "trusted-token-full"),
        PublicRoute("POST", V1_TOKEN, endpoints.session_token, "trusted-session-token"),
        PublicRoute("POST", V2_REVOKE, endpoints.revoke, "trusted-token-revoke"),
        PublicRoute("POST", V2_VALIDATE, endpoints.validate, "trusted-token-validate"),
        *(PublicRoute("POST", path, _not_implemented(path), name)
          for path, name in V2_NOT_IMPLEMENTED.items()),
    ]
