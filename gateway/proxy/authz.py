"""The forward-auth decision endpoint (``[authz]``): a proxy forwards, tokengate decides.

A decision request goes through the same middlewares as a proxied request
(credentials, throttle, rules, scope, rate limit, metrics, access line); only
which request they judge differs, and the last step answers instead of
forwarding. See gateway/policy/forwardauth.py for the protocols.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gateway.policy.errors import BadRequest, Forbidden, Problem
from gateway.policy.forwardauth import Original, Shape, read_original, shape_of, speaks_nginx
from gateway.policy.headers import client_address, is_trusted
from gateway.proxy.state import (
    DECISION,
    IDENTITY,
    PATH,
    QUERY,
    RATE_LIMIT_HEADERS,
    REQUEST_ID,
)

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

    from gateway.metrics import Metrics
    from gateway.policy.headers import Networks
    from gateway.runtime import Gateway

log = logging.getLogger("tokengate.authz")

ROUTE = "authz"
MAX_PROBLEM_HEADER = 2048
"""Longest problem body copied into X-Tokengate-Problem (nginx reads headers into 4 KiB)."""


class Asker:
    """Who may ask for decisions, and which client a decision is about."""

    def __init__(self, gw: Gateway) -> None:
        self.prefix = gw.settings.authz.path
        self.allowed: Networks = gw.settings.authz.trusted_networks()
        # Hops of X-Forwarded-For that are proxies, not the client.
        self.proxies: Networks = (*self.allowed, *gw.trusted_proxies)
        self.metrics = gw.metrics

    def original(self, request: web.Request) -> tuple[Original, str]:
        """The request a decision is about, and its client's address (sets DECISION)."""
        peer = request.remote or "unknown"
        if not is_trusted(peer, self.allowed):
            if speaks_nginx(request.headers):
                # A misconfigured trusted_proxies must read as such through
                # nginx, not as "tokengate did not answer".
                request[DECISION] = Shape.NGINX
            self.metrics.authz_untrusted_peer()
            log.warning("decision request from a peer not in authz.trusted_proxies",
                        extra={"peer": peer, "request_id": request[REQUEST_ID]})
            raise Forbidden("this address may not ask for decisions",
                            extra={"rule": "authz-peer"})
        raw_path, _, query = request.raw_path.partition("?")
        if not raw_path.startswith(self.prefix):
            # The route matched a decoded spelling (/_tokengate/%61uthz).
            raise BadRequest(f"spell the decision path {self.prefix} literally")
        tail = raw_path[len(self.prefix):]
        shape = shape_of(request.headers, tail)
        request[DECISION] = shape  # from here on, a refusal is answered in shape's terms
        original = read_original(shape, request.headers, method=request.method,
                                 tail=tail, query=query)
        client = client_address(peer, request.headers.getall("X-Forwarded-For", []),
                                self.proxies)
        return original, client


def decision_handler(gw: Gateway) -> Handler:
    """The last step of a decision; refusals were raised before it."""

    async def allow(request: web.Request) -> web.StreamResponse:
        """200, no body, the identity and rate-limit headers."""
        query = request[QUERY]
        response = web.Response(status=200)
        add = response.headers.add
        for name, value in gw.identity_headers(request[IDENTITY], request[REQUEST_ID]):
            add(name, value)
        for name, value in request.get(RATE_LIMIT_HEADERS, ()):
            add(name, value)
        # (X-Request-Id is added by observe, as to every answer.)
        # What was judged: a proxy that can should forward exactly this.
        add("X-Tokengate-Uri", request[PATH] + ("?" + query if query else ""))
        gw.metrics.authz_decision(request[DECISION].value, True)
        return response

    return allow


def refused(metrics: Metrics, request: web.Request, response: web.Response,
            problem: Problem) -> None:
    """Count a refused decision; for nginx, repeat the refusal in headers.

    nginx's ``auth_request`` passes only 401 and 403 on (every other status
    becomes 500) and drops the body; the shipped config re-emits the real
    answer from X-Tokengate-Status and X-Tokengate-Problem in an
    ``error_page`` location.
    """
    shape: Shape | None = request.get(DECISION)
    if shape is None:
        return
    metrics.authz_decision(shape.value, False)
    if shape is not Shape.NGINX:
        return
    response.headers["X-Tokengate-Status"] = str(response.status)
    response.headers["X-Tokengate-Problem"] = _one_line(problem.body())
    # nginx never reads the body of a refusal: sent, it costs the pooled
    # connection (nginx closes it rather than drain), so it is not sent.
    response.body = b""
    del response.headers["Content-Type"]


def _one_line(doc: Mapping[str, Any]) -> str:
    """The problem document as one line of ASCII that fits in a header."""
    text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
    if len(text) > MAX_PROBLEM_HEADER:
        short = {k: doc[k] for k in ("type", "title", "status") if k in doc}
        text = json.dumps(short, ensure_ascii=True, separators=(",", ":"))
    return text
