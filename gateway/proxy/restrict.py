"""A token's own restrictions on the data plane: its network allow-list and its scopes.

Runs after the deny rules and the workspace scope and before the rate
limiter, so a request refused here uses up no quota. Everything it needs
came with the cached credential (``Identity.restrictions``): no store call.
A token with no restrictions costs one attribute test.

The token's own rate limit is the limiter's business (``proxy/app.py``):
it counts the request in a second window in the same store call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.policy.errors import Forbidden
from gateway.policy.model import Identity
from gateway.policy.rules import NETWORK_RULE, SCOPE_RULE
from gateway.proxy.state import CLIENT, IDENTITY, METHOD, METHODS, PATH

if TYPE_CHECKING:
    from gateway.runtime import Gateway

RULES = (NETWORK_RULE, SCOPE_RULE)
"""The rule names these refusals carry in problems and ``tokengate_denials_total``."""


def restrict_middleware(gw: Gateway) -> Middleware:
    """403 for a request from outside the token's networks or beyond its scopes."""
    metrics = gw.metrics

    @web.middleware
    async def restrict(request: web.Request, handler: Handler) -> web.StreamResponse:
        identity: Identity | None = request.get(IDENTITY)
        restrictions = identity.restrictions if identity is not None else None
        if restrictions is None:
            return await handler(request)
        networks = restrictions.networks
        if networks is not None and not networks.permits(request[CLIENT]):
            metrics.denied(NETWORK_RULE, "enforce")
            raise Forbidden("this token may not be used from this network",
                            extra={"rule": NETWORK_RULE})
        scopes = restrictions.scopes
        if scopes is not None:
            # Every method the upstream could route (overrides included) must be granted.
            methods = request.get(METHODS) or (request[METHOD],)
            if not scopes.allows(methods, request[PATH], gw.policy.classes):
                metrics.denied(SCOPE_RULE, "enforce")
                raise Forbidden("this token's scopes do not allow this request",
                                extra={"rule": SCOPE_RULE})
        return await handler(request)

    return restrict
