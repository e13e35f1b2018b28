"""Typed per-request state the data-plane middlewares hand to each other."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway.policy.forwardauth import Shape
from gateway.policy.model import Identity

REQUEST_ID = web.RequestKey("tokengate.request_id", str)
PATH = web.RequestKey("tokengate.path", str)
"""The normalised path: what the rules match and what is forwarded."""
IDENTITY = web.RequestKey("tokengate.identity", Identity)
METHOD = web.RequestKey("tokengate.method", str)
"""The judged request's method: the request line's, or a decision's original one."""
QUERY = web.RequestKey("tokengate.query", str)
"""The judged request's raw query string."""
DECISION = web.RequestKey("tokengate.decision", Shape)
"""Set only on forward-auth decision requests: the asking proxy's protocol."""
METHODS = web.RequestKey("tokengate.methods", tuple)
"""Set only when a method override names others: every method the upstream could route."""
ROUTE_CLASS = web.RequestKey("tokengate.route_class", str)
RATE_LIMIT_HEADERS = web.RequestKey("tokengate.rate_limit_headers", Sequence)
UPSTREAM_STATUS = web.RequestKey("tokengate.upstream_status", object)
CLIENT = web.RequestKey("tokengate.client", str)
"""The client's address: the peer, or from X-Forwarded-For behind a trusted proxy."""
