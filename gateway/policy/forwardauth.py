"""Which request a forward-auth decision is about.

A proxy in front of the upstream asks tokengate about each request it holds
(``authz.path``); the original method and URI arrive in headers whose names
depend on the proxy:

* nginx ``auth_request`` and ingress-nginx ``auth-url``: ``X-Original-Method``
  with ``X-Original-URI`` (nginx's ``$request_uri``) or ``X-Original-URL``;
* Traefik ``forwardAuth`` and Caddy ``forward_auth``: ``X-Forwarded-Method``
  with ``X-Forwarded-Uri``;
* Envoy ``ext_authz`` (HTTP service): the decision request's own method, its
  path after the ``path_prefix`` being the original path.

Exactly one of those shapes must be present. Proxies pass most client
headers on to the decision request, so a client can add a shape the proxy
did not set (an ``X-Original-URI`` through Traefik): two shapes at once are
refused, never resolved by a precedence the client could exploit.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.policy.errors import BadRequest
from gateway.policy.methods import Headers

NGINX_HEADERS = ("X-Original-Method", "X-Original-URI", "X-Original-URL")
FORWARDED_HEADERS = ("X-Forwarded-Method", "X-Forwarded-Uri")
METHOD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")


class Shape(enum.Enum):
    """The forward-auth protocol a decision request speaks."""

    NGINX = "nginx"
    FORWARDED = "forwarded"  # Traefik, Caddy
    ENVOY = "envoy"


@dataclass(frozen=True, slots=True)
class Original:
    """The request a decision is about: method, raw path and raw query."""

    shape: Shape
    method: str
    raw_path: str
    raw_query: str


def original_request(headers: Headers, *, method: str, tail: str, query: str) -> Original:
    """The original request described by a decision request.

    ``method``, ``tail`` and ``query`` are the decision request's own method,
    raw path after ``authz.path`` and raw query (Envoy's shape).
    """
    return read_original(shape_of(headers, tail), headers, method=method, tail=tail, query=query)


def speaks_nginx(headers: Headers) -> bool:
    """True if the request carries nginx's X-Original-* headers."""
    return any(headers.getall(name, []) for name in NGINX_HEADERS)


def shape_of(headers: Headers, tail: str) -> Shape:
    """Which proxy's protocol a decision request speaks (exactly one, or 400)."""
    nginx = speaks_nginx(headers)
    forwarded = any(headers.getall(name, []) for name in FORWARDED_HEADERS)
    envoy = tail != ""
    if nginx + forwarded + envoy > 1:
        raise BadRequest(
            "the decision request describes its original request in more than one "
            "proxy's headers (X-Original-*, X-Forwarded-Method/-Uri, or a path after "
            "the decision path); a proxy must set its own and clear the others")
    if nginx:
        return Shape.NGINX
    if forwarded:
        return Shape.FORWARDED
    if envoy:
        return Shape.ENVOY
    raise BadRequest(
        "a decision request names its original request: X-Original-Method and "
        "X-Original-URI (nginx), X-Forwarded-Method and X-Forwarded-Uri (Traefik, "
        "Caddy), or the original path after the decision path (Envoy)")


def read_original(shape: Shape, headers: Headers, *, method: str, tail: str,
                  query: str) -> Original:
    """The original request, read the way ``shape`` describes it."""
    if shape is Shape.NGINX:
        uri = _single(headers, "X-Original-URI")
        url = _single(headers, "X-Original-URL")
        if url is not None:
            # ingress-nginx sets only X-Original-URL and passes the client's
            # headers on: a client-sent X-Original-URI must not pick the path.
            from_url = _uri_of_url(url)
            if uri is not None and uri != from_url:
                raise BadRequest("X-Original-URI and X-Original-URL name different requests")
            uri = from_url
        if uri is None:
            raise BadRequest("X-Original-Method needs X-Original-URI or X-Original-URL")
        return _original(shape, _method(headers, "X-Original-Method"), uri)
    if shape is Shape.FORWARDED:
        uri = _single(headers, "X-Forwarded-Uri")
        if uri is None:
            raise BadRequest("X-Forwarded-Method needs X-Forwarded-Uri")
        return _original(shape, _method(headers, "X-Forwarded-Method"), uri)
    if not tail.startswith("/"):
        raise BadRequest("the original path after the decision path must start with '/'")
    return Original(shape, method, tail, query)


def _single(headers: Headers, name: str) -> str | None:
    values = headers.getall(name, [])
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name} appears more than once")
    value: str = values[0]
    if not value:
        raise BadRequest(f"{name} is empty")
    return value


def _method(headers: Headers, name: str) -> str:
    value = _single(headers, name)
    if value is None:
        raise BadRequest(f"the original method is missing ({name})")
    if len(value) > 32 or not METHOD_CHARS.issuperset(value):
        raise BadRequest(f"{name} is not an HTTP method")
    # Methods are case-sensitive (RFC 9110); proxies send them as received.
    return value


def _uri_of_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequest("X-Original-URL must be an absolute http(s) URL")
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _original(shape: Shape, method: str, uri: str) -> Original:
    if not uri.startswith("/"):
        raise BadRequest("the original URI must start with '/'")
    raw_path, _, raw_query = uri.partition("?")
    return Original(shape, method, raw_path, raw_query.partition("#")[0])
