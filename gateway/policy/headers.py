"""Which request headers are dropped, kept or added on the way upstream."""

from __future__ import annotations

import ipaddress
import itertools
import os
import re

from gateway.policy.methods import is_override_header
from gateway.policy.model import Identity

# RFC 9110 section 7.6.1 plus the de-facto hop-by-hop fields proxies drop.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    }
)

IDENTITY_PREFIX = "x-tokengate-"
# Headers tokengate sets itself; a client's copy is never passed on.
GATEWAY_SET = frozenset(
    {
        "authorization",
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-request-id",
        # The gateway answers 100-continue itself, after the checks; forwarded,
        # the upstream client would wait for the upstream's 100 with no timeout.
        "expect",
    }
)

REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def spoofable(name: str) -> bool:
    """True for any spelling an upstream might read as an identity header.

    Case is ignored and ``_`` counts as ``-``: many servers (CGI/WSGI, nginx
    with underscores_in_headers) map both to the same variable.
    """
    return name.lower().replace("_", "-").startswith(IDENTITY_PREFIX)


def connection_tokens(values: list[str]) -> frozenset[str]:
    """Header names listed in ``Connection`` (those are hop-by-hop too)."""
    return frozenset(
        token.strip().lower() for v in values for token in v.split(",") if token.strip()
    )


def dropped_request_header(
    name: str, listed: frozenset[str], *, method_overrides: bool = True
) -> bool:
    """Should a client request header be removed before forwarding?

    ``method_overrides`` drops every spelling of ``X-HTTP-Method-Override``
    and its siblings (``proxy.method_override_headers = "strip"``), so the
    upstream never routes a method the deny rules did not see.
    """
    lower = name.lower()
    return (lower in HOP_BY_HOP or lower in GATEWAY_SET or lower in listed or spoofable(name)
            or (method_overrides and is_override_header(name)))


def dropped_response_header(name: str, listed: frozenset[str]) -> bool:
    """Should an upstream response header be removed before answering?"""
    lower = name.lower()
    return lower in HOP_BY_HOP or lower in listed


_ID_PREFIX = os.urandom(8).hex()  # per process; the counter makes each id unique
_ID_COUNTER = itertools.count()


def _new_id_prefix() -> None:
    # A forked worker must not repeat its parent's (or a sibling's) ids.
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX, _ID_COUNTER = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_new_id_prefix)


def request_id(presented: str | None) -> str:
    """Keep a well-formed client request id, else make one (unique per process and run)."""
    if presented and REQUEST_ID.fullmatch(presented):
        return presented
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def identity_headers(identity: Identity) -> list[tuple[str, str]]:
    """The identity headers the upstream can trust."""
    return [
        ("X-Tokengate-User", identity.user),
        ("X-Tokengate-Role", identity.role.value),
        ("X-Tokengate-Token-Type", identity.token_type.value),
        ("X-Tokengate-Token", identity.token),
        ("X-Tokengate-Workspace", identity.workspace),
    ]


Networks = tuple["ipaddress.IPv4Network | ipaddress.IPv6Network", ...]


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def is_trusted(address: str, trusted: Networks) -> bool:
    """True if ``address`` is one of the trusted proxies."""
    if not trusted:
        return False  # the usual case; no address parsing on the hot path
    ip = _ip(address)
    return ip is not None and any(ip in net for net in trusted)


def client_address(peer: str, forwarded_for: list[str], trusted: Networks) -> str:
    """The client a request comes from.

    Only when the peer is one of ``trusted`` (a load balancer or ingress in
    front of the gateway) is ``X-Forwarded-For`` read: the address is the
    rightmost entry that is not itself a trusted proxy. Anything a client
    could have written to the left of that is ignored, so it cannot pick the
    address its failed attempts are counted under.
    """
    if not trusted or not is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for v in forwarded_for for h in v.split(",") if h.strip()]
    for hop in reversed(hops):
        if _ip(hop) is None:
            return peer  # a malformed chain: trust nothing in it
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def forwarded_for(peer: str, forwarded: list[str], trusted: Networks) -> str:
    """The X-Forwarded-For to send upstream: the chain from a trusted peer, extended."""
    if trusted and is_trusted(peer, trusted):
        chain = ", ".join(v.strip() for v in forwarded if v.strip())
        return f"{chain}, {peer}" if chain else peer
    return peer
