"""The data plane: middlewares in order, then the streaming forwarder.

``observe`` (problems, metrics, access log) → ``authenticate`` (path
normalisation, credentials) → ``enforce`` (deny rules, workspace scope) →
``restrict`` (the token's networks and scopes, ``proxy/restrict.py``) →
``limit`` (sliding window, and the token's own) → forward. Each step leaves
its result on the request for the next; denied requests never reach the
rate limiter, so they use up no quota.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.logs import log_access
from gateway.policy.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    GatewayTimeout,
    Problem,
    StoreUnavailable,
    TooManyRequests,
    Unauthenticated,
)
from gateway.policy.headers import (
    client_address,
    forwarded_for,
    is_trusted,
    request_id,
)
from gateway.policy.methods import candidate_methods
from gateway.policy.model import Identity, TokenType
from gateway.policy.paths import normalize_path
from gateway.policy.ratelimit import closer_to_exhaustion, rate_limit_headers, window_key
from gateway.policy.restrictions import TOKEN_WINDOW
from gateway.proxy import authz
from gateway.proxy.problems import http_problem, problem_response
from gateway.proxy.restrict import restrict_middleware
from gateway.proxy.state import (
    CLIENT,
    DECISION,
    IDENTITY,
    METHOD,
    METHODS,
    PATH,
    QUERY,
    RATE_LIMIT_HEADERS,
    REQUEST_ID,
    ROUTE_CLASS,
    UPSTREAM_STATUS,
)
from gateway.store.base import StoreError

if TYPE_CHECKING:
    from gateway.runtime import Gateway

log = logging.getLogger("tokengate.proxy")

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
PUBLIC = "public:"
"""Route-name prefix of endpoints that need no credentials (trusted-auth token requests)."""

OUTCOMES: dict[type[Problem], str] = {
    Unauthenticated: "unauthenticated",
    Forbidden: "forbidden",
    TooManyRequests: "rate_limited",
    BadRequest: "bad_request",
    BadGateway: "upstream_error",
    GatewayTimeout: "upstream_error",
    StoreUnavailable: "store_unavailable",
}


def _outcome(problem: Problem) -> str:
    for cls in type(problem).__mro__:
        if cls in OUTCOMES:
            return OUTCOMES[cls]
    # A 501 (a ThoughtSpot endpoint tokengate does not implement) is the
    # request's matter, not the upstream's.
    return "bad_request" if problem.status < 500 or problem.status == 501 else "upstream_error"


def observe_middleware(gw: Gateway) -> Middleware:
    """Outermost: request id, in-flight gauge, problems, metrics and the access line."""
    metrics = gw.metrics
    access = gw.settings.log.access

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        rid = request_id(request.headers.get("X-Request-Id"))
        request[REQUEST_ID] = rid
        metrics.in_flight.inc()
        outcome = "allowed"
        problem: Problem | None = None
        try:
            try:
                response = await handler(request)
            except StoreError:
                raise StoreUnavailable() from None
        except Problem as exc:
            problem = exc
        except web.HTTPException as exc:  # aiohttp's own (e.g. 413 body too large)
            problem = http_problem(exc)
        except Exception:
            log.exception("unhandled error in the proxy", extra={"request_id": rid})
            problem = Problem("internal error")
        finally:
            metrics.in_flight.dec()
        if problem is not None:
            outcome = _outcome(problem)
            response = problem_response(problem)
            authz.refused(metrics, request, response, problem)
        if not response.prepared:
            response.headers["X-Request-Id"] = rid
        if not request.content.is_eof():
            # A refusal (or a cut) before the body was read: close instead of
            # letting aiohttp read and discard up to a gigabyte.
            response.force_close()
        elapsed = time.perf_counter() - start
        identity: Identity | None = request.get(IDENTITY)
        route_class = request.get(ROUTE_CLASS, "none")
        token_type = identity.token_type.value if identity else "none"
        metrics.request(outcome, token_type, route_class, elapsed)
        if access:
            log_access({
                "request_id": rid, "method": request.get(METHOD, request.method),
                "path": request.get(PATH) or "-", "status": response.status,
                "duration_ms": round(elapsed * 1000, 3), "outcome": outcome,
                "token_type": token_type, "token": identity.token if identity else None,
                "user": identity.user if identity else None, "route_class": route_class,
                "upstream_status": request.get(UPSTREAM_STATUS),
                "client": request.get(CLIENT, request.remote),
            })
        return response

    return observe


def authenticate_middleware(gw: Gateway) -> Middleware:
    """Find the request to judge, normalise its path, then authenticate (except public endpoints).

    The request to judge is the request itself, or for a forward-auth
    decision the original request the asking proxy describes.
    """
    trusted = gw.trusted_proxies
    asker = authz.Asker(gw) if gw.settings.authz.enabled else None

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        if asker is not None and route.name == authz.ROUTE:
            original, request[CLIENT] = asker.original(request)
            method, raw_path, query = original.method, original.raw_path, original.raw_query
        else:
            peer = request.remote or "unknown"
            request[CLIENT] = client_address(
                peer, request.headers.getall("X-Forwarded-For", []), trusted) if trusted else peer
            method = request.method
            raw_path, _, query = request.raw_path.partition("?")
        request[METHOD] = method
        request[QUERY] = query
        request[PATH] = normalize_path(raw_path)
        if route.name is not None and route.name.startswith(PUBLIC):
            return await handler(request)
        request[IDENTITY] = await gw.authenticator(
            request.headers.get("Authorization"), request[CLIENT]
        )
        return await handler(request)

    return authenticate


def enforce_middleware(gw: Gateway) -> Middleware:
    """Deny rules and workspace scoping, before any quota is used."""
    metrics = gw.metrics

    @web.middleware
    async def enforce(request: web.Request, handler: Handler) -> web.StreamResponse:
        identity: Identity | None = request.get(IDENTITY)
        if identity is None:
            return await handler(request)
        policy = gw.policy
        path = request[PATH]
        method = request[METHOD]
        # With a method override the upstream may route another method than
        # the request line's: every one it could route is checked. A
        # decision request carries no body: the original may have had one.
        methods = candidate_methods(
            method, request.headers, path=path, raw_query=request[QUERY],
            has_body=request.body_exists if request.get(DECISION) is None else True)
        if methods is None:
            verdict = policy.rules.evaluate(method, path, identity.token_type)
        else:
            request[METHODS] = methods  # for the limiter's class
            verdict = policy.rules.evaluate_methods(methods, path, identity.token_type)
        for rule in verdict.dry_run:
            metrics.denied(rule.name, "dry-run")
            log.info("dry-run deny rule matched", extra={
                "rule": rule.name, "request_id": request[REQUEST_ID], "path": path})
        if verdict.deny is not None:
            metrics.denied(verdict.deny.name, "enforce")
            raise Forbidden(verdict.deny.message, extra={"rule": verdict.deny.name})
        if policy.scope is not None and not policy.scope.permits(path, identity.workspace):
            raise Forbidden(
                "this token belongs to another workspace than the one the path names",
                extra={"rule": "workspace-scope"},
            )
        return await handler(request)

    return enforce


def limit_middleware(gw: Gateway) -> Middleware:
    """The per-username sliding window (and a token's own): one store call per request."""
    by_user = gw.settings.rate_limit.key == "user"

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        identity: Identity | None = request.get(IDENTITY)
        if identity is None:
            return await handler(request)
        path = request[PATH]
        classes = gw.policy.classes
        # An override never buys a laxer class: the strictest candidate's applies.
        methods = request.get(METHODS)
        route_class = (classes.classify(request[METHOD], path) if methods is None
                       else classes.classify_methods(methods, path))
        request[ROUTE_CLASS] = route_class.name
        if by_user or identity.token_type is TokenType.TRUSTED:
            subject = "u:" + identity.user
        else:
            subject = "t:" + identity.token
        restrictions = identity.restrictions
        own = restrictions.rate_limit if restrictions is not None else None
        # The headers publish the window closer to exhaustion (the refusing one on a 429).
        name, seconds, mine = route_class.name, route_class.window_seconds, False
        window = (window_key(route_class.name, subject), route_class.limit,
                  route_class.window_seconds)
        start = time.perf_counter()
        try:
            if own is None:
                decision = await gw.store.hit_rate_limit(*window)
            else:
                # Both windows in the same call: admitted into both or neither.
                user, token = await gw.store.hit_rate_limit_both(
                    window, (window_key(f"token:{identity.token}", subject), own.limit,
                             own.window_seconds))
                decision = closer_to_exhaustion(user, token)
                if decision is token:
                    name, seconds, mine = TOKEN_WINDOW, own.window_seconds, True
        except StoreError:
            gw.metrics.store_call("rate_limit", time.perf_counter() - start, failed=True)
            raise
        gw.metrics.store_call("rate_limit", time.perf_counter() - start)
        headers = rate_limit_headers(decision, policy=name, window_seconds=seconds)
        if not decision.allowed:
            whose = "this token's rate limit" if mine else "rate limit"
            raise TooManyRequests(
                f"{whose} of {decision.limit} requests per {seconds:g} s exceeded",
                headers=dict(headers),
            )
        request[RATE_LIMIT_HEADERS] = headers
        return await handler(request)

    return limit


async def forward_handler(request: web.Request) -> web.StreamResponse:
    """Forward an authenticated, permitted, admitted request."""
    gw = request.app[GATEWAY]
    identity: Identity = request[IDENTITY]
    peer = request.remote or ""
    trusted = gw.trusted_proxies
    behind_proxy = is_trusted(peer, trusted)  # then its X-Forwarded-* describe the client
    headers = request.headers
    added = [
        ("X-Forwarded-For", forwarded_for(peer, headers.getall("X-Forwarded-For", []), trusted)),
        ("X-Forwarded-Proto",
         headers.get("X-Forwarded-Proto", request.scheme) if behind_proxy else request.scheme),
        ("X-Forwarded-Host",
         headers.get("X-Forwarded-Host", request.host) if behind_proxy else request.host),
        ("X-Request-Id", request[REQUEST_ID]),
        *gw.identity_headers(identity, request[REQUEST_ID]),
    ]
    response_headers = [
        *request.get(RATE_LIMIT_HEADERS, ()),
        ("X-Request-Id", request[REQUEST_ID]),
    ]
    try:
        return await gw.forwarder.forward(request, request[PATH], added, response_headers)
    except Problem as problem:
        # The request used quota even though the upstream failed (502/504):
        # the client still learns how much is left.
        for name, value in request.get(RATE_LIMIT_HEADERS, ()):
            problem.headers.setdefault(name, value)
        raise


def build_proxy_app(gw: Gateway) -> web.Application:
    """The proxy listener's application."""
    app = web.Application(
        middlewares=[
            observe_middleware(gw),
            authenticate_middleware(gw),
            enforce_middleware(gw),
            restrict_middleware(gw),
            limit_middleware(gw),
        ],
        client_max_size=1024 * 1024,  # only public JSON endpoints read bodies; proxied ones stream
        handler_args={"max_field_size": gw.settings.proxy.max_header_bytes,
                      "max_line_size": gw.settings.proxy.max_header_bytes,
                      "keepalive_timeout": gw.settings.proxy.idle_timeout_seconds,
                      # An unread body is never drained: the connection closes.
                      "lingering_time": 0},
    )
    app[GATEWAY] = gw
    if gw.settings.authz.enabled:
        # Envoy appends the original path: every path under the prefix.
        app.router.add_route("*", gw.settings.authz.path + r"{tail:(?:/.*)?}",
                             authz.decision_handler(gw), name=authz.ROUTE)
    for route in gw.public_routes:
        app.router.add_route(route.method, route.path, route.handler, name=PUBLIC + route.name)
    # No 100 Continue before the checks: the forwarder sends it (forward.py).
    app.router.add_route("*", "/{tail:.*}", forward_handler, name="forward",
                         expect_handler=_expect_later)
    return app


async def _expect_later(request: web.Request) -> None:
    """Answer nothing to ``Expect`` yet: the checks come first."""
