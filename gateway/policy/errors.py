"""Errors that carry their own HTTP status and RFC 9457 problem type.

Any layer raises these; one middleware per listener turns them into
``application/problem+json`` responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROBLEM_BASE = "https://tokengate.dev/problems/"


class Problem(Exception):
    """An error that becomes a problem+json response."""

    status: int = 500
    type_slug: str = "internal"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    @property
    def type(self) -> str:
        """The problem type URI."""
        return PROBLEM_BASE + self.type_slug

    def body(self) -> dict[str, Any]:
        """The problem document (RFC 9457)."""
        doc: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        doc.update(self.extra)
        return doc


class BadRequest(Problem):
    status = 400
    type_slug = "bad-request"
    title = "Bad request"


class Unauthenticated(Problem):
    """401: the credentials are missing or not acceptable.

    ``reason`` is for metrics and logs only; it never reaches the client,
    because the body must not tell whether a token exists.
    """

    status = 401
    type_slug = "unauthenticated"
    title = "Unauthenticated"

    def __init__(self, detail: str, *, reason: str = "malformed", **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.reason = reason
        self.headers.setdefault("WWW-Authenticate", 'Basic realm="tokengate"')


class Forbidden(Problem):
    status = 403
    type_slug = "forbidden"
    title = "Forbidden"


class NotFound(Problem):
    status = 404
    type_slug = "not-found"
    title = "Not found"


class Conflict(Problem):
    status = 409
    type_slug = "conflict"
    title = "Conflict"


class Unprocessable(Problem):
    """422: well-formed JSON whose fields are wrong; detail names the field.

    The detail starts with ``field: ``; that name is also given as the
    ``field`` member so clients need not parse the text.
    """

    status = 422
    type_slug = "invalid-field"
    title = "Invalid field"

    def __init__(self, detail: str, **kw: Any) -> None:
        super().__init__(detail, **kw)
        field, sep, _ = detail.partition(": ")
        if sep and "field" not in self.extra and " " not in field:
            self.extra["field"] = field


class RequestTimeout(Problem):
    """408: the client sent its body too slowly (the connection is then closed)."""

    status = 408
    type_slug = "request-timeout"
    title = "Request timeout"


class ExpectationFailed(Problem):
    """417: an ``Expect`` value other than ``100-continue``."""

    status = 417
    type_slug = "expectation-failed"
    title = "Expectation failed"


class TooManyRequests(Problem):
    status = 429
    type_slug = "rate-limited"
    title = "Too many requests"


class BadGateway(Problem):
    status = 502
    type_slug = "upstream-unavailable"
    title = "Bad gateway"


class StoreUnavailable(Problem):
    """503: the credential/limit store cannot be reached; fail closed."""

    status = 503
    type_slug = "store-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str = "the token store is unavailable", **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.headers.setdefault("Retry-After", "1")


class GatewayTimeout(Problem):
    status = 504
    type_slug = "upstream-timeout"
    title = "Gateway timeout"
