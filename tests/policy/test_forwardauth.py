"""Which request a forward-auth decision is about, for each proxy's shape."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.policy.errors import BadRequest
from gateway.policy.forwardauth import Original, Shape, original_request

NGINX = Shape.NGINX
FWD = Shape.FORWARDED
ENVOY = Shape.ENVOY

# (headers, decision method, tail after authz.path, decision query) -> Original
READ: list[tuple[list[tuple[str, str]], str, str, str, Original]] = [
    ([("X-Original-Method", "POST"), ("X-Original-URI", "/api/ws/invites?x=1")], "GET", "", "",
     Original(NGINX, "POST", "/api/ws/invites", "x=1")),
    ([("x-original-method", "DELETE"), ("x-original-uri", "/a%2Fb")], "GET", "", "",
     Original(NGINX, "DELETE", "/a%2Fb", "")),
    # ingress-nginx sends the absolute URL (and may add X-Original-URI too).
    ([("X-Original-Method", "PUT"), ("X-Original-URL", "https://api.example/api/ws/x?y=%20")],
     "GET", "", "", Original(NGINX, "PUT", "/api/ws/x", "y=%20")),
    ([("X-Original-Method", "GET"), ("X-Original-URL", "http://h")], "GET", "", "",
     Original(NGINX, "GET", "/", "")),
    ([("X-Original-Method", "GET"), ("X-Original-URI", "/u?a=%2F"),
      ("X-Original-URL", "https://h:8443/u?a=%2F")], "GET", "", "",
     Original(NGINX, "GET", "/u", "a=%2F")),
    # Traefik sends GET with X-Forwarded-Method; Caddy the same headers.
    ([("X-Forwarded-Method", "PATCH"), ("X-Forwarded-Uri", "/api/ws/r?q"),
      ("X-Forwarded-Host", "api.example"), ("X-Forwarded-Proto", "https")], "GET", "", "",
     Original(FWD, "PATCH", "/api/ws/r", "q")),
    # X-Forwarded-For/-Host/-Proto alone are no shape: every proxy sets them.
    ([("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Host", "h")], "DELETE", "/api/ws/x", "a=1",
     Original(ENVOY, "DELETE", "/api/ws/x", "a=1")),
    ([], "POST", "/", "", Original(ENVOY, "POST", "/", "")),
    ([], "GET", "//api/./ws", "", Original(ENVOY, "GET", "//api/./ws", "")),
]


@pytest.mark.parametrize(("headers", "method", "tail", "query", "expected"), READ)
def test_the_original_request_is_read_from_the_shape_present(
    headers: list[tuple[str, str]], method: str, tail: str, query: str, expected: Original
) -> None:
    """Each proxy's headers (or Envoy's path) give the method, raw path and raw query to judge."""
    got = original_request(CIMultiDict(headers), method=method, tail=tail, query=query)
    assert got == expected


# (headers, tail) -> words the 400's detail contains
REFUSED: list[tuple[list[tuple[str, str]], str, str]] = [
    ([], "", "names its original request"),
    # Two shapes at once: a client added one the proxy did not set.
    ([("X-Original-Method", "GET"), ("X-Original-URI", "/a"),
      ("X-Forwarded-Method", "POST"), ("X-Forwarded-Uri", "/b")], "", "more than one"),
    ([("X-Forwarded-Uri", "/b")], "/envoy/path", "more than one"),
    ([("X-Original-URI", "/b")], "/x", "more than one"),
    ([("X-Original-Method", "GET")], "", "needs X-Original-URI"),
    ([("X-Original-URI", "/a")], "", "original method is missing"),
    ([("X-Forwarded-Method", "GET")], "", "needs X-Forwarded-Uri"),
    ([("X-Forwarded-Uri", "/a")], "", "original method is missing"),
    ([("X-Original-Method", "GET"), ("X-Original-URI", "/a"), ("X-Original-URI", "/b")], "",
     "more than once"),
    ([("X-Original-Method", "GET"), ("X-Original-Method", "POST"), ("X-Original-URI", "/a")], "",
     "more than once"),
    ([("X-Original-Method", ""), ("X-Original-URI", "/a")], "", "empty"),
    ([("X-Original-Method", "GET"), ("X-Original-URI", "")], "", "empty"),
    ([("X-Original-Method", "GE T"), ("X-Original-URI", "/a")], "", "not an HTTP method"),
    ([("X-Original-Method", "G" * 33), ("X-Original-URI", "/a")], "", "not an HTTP method"),
    ([("X-Forwarded-Method", "GET\t"), ("X-Forwarded-Uri", "/a")], "", "not an HTTP method"),
    ([("X-Original-Method", "GET"), ("X-Original-URI", "api/x")], "", "must start with '/'"),
    ([("X-Original-Method", "GET"), ("X-Original-URI", "http://evil/api")], "",
     "must start with '/'"),
    ([("X-Original-Method", "GET"), ("X-Original-URL", "/relative")], "", "absolute http(s) URL"),
    ([("X-Original-Method", "GET"), ("X-Original-URL", "ftp://h/x")], "", "absolute http(s) URL"),
    ([], "x/y", "must start with '/'"),
    # Through ingress-nginx (X-Original-URL) a client adds its own X-Original-URI.
    ([("X-Original-Method", "POST"), ("X-Original-URL", "https://h/api/ws/invites"),
      ("X-Original-URI", "/api/ws/reports")], "", "name different requests"),
]


@pytest.mark.parametrize(("headers", "tail", "words"), REFUSED)
def test_a_missing_malformed_or_ambiguous_original_is_400(
    headers: list[tuple[str, str]], tail: str, words: str
) -> None:
    """No shape, two shapes, repeated, empty or malformed fields: a 400 that says which."""
    with pytest.raises(BadRequest) as err:
        original_request(CIMultiDict(headers), method="GET", tail=tail, query="")
    assert words in err.value.detail
