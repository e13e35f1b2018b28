"""Which headers go upstream: hop-by-hop, spoofed identity, request ids."""

from __future__ import annotations

import pytest

from gateway.policy.headers import (
    connection_tokens,
    dropped_request_header,
    dropped_response_header,
    identity_headers,
    request_id,
)
from gateway.policy.model import Identity, Role, TokenType

NONE: frozenset[str] = frozenset()


@pytest.mark.parametrize("name", [
    "X-Tokengate-User", "x-tokengate-user", "X_TOKENGATE_USER", "x_Tokengate-Role",
    "X-TOKENGATE-WORKSPACE", "X-Tokengate-Assertion", "x-tokengate_token-type",
])
def test_spoofed_identity_headers_are_dropped_in_any_spelling(name: str) -> None:
    """Case and underscores do not let a client smuggle an identity header."""
    assert dropped_request_header(name, NONE)


@pytest.mark.parametrize("name", [
    "Connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    "Proxy-Authorization", "Authorization", "X-Forwarded-For", "Forwarded", "Host",
])
def test_hop_by_hop_and_gateway_owned_headers_are_dropped(name: str) -> None:
    """Hop-by-hop headers (RFC 9110 7.6.1) and the ones the gateway sets are not passed on."""
    assert dropped_request_header(name, NONE)


def test_headers_named_in_connection_are_hop_by_hop() -> None:
    """A header listed in Connection is removed in both directions."""
    listed = connection_tokens(["close, X-Secret-Hop", " foo "])
    assert listed == {"close", "x-secret-hop", "foo"}
    assert dropped_request_header("X-Secret-Hop", listed)
    assert dropped_response_header("Foo", listed)


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "Content-Length", "X-Custom",
                                  "X-Tokengat-User", "Cookie"])
def test_ordinary_headers_pass(name: str) -> None:
    """End-to-end headers are forwarded untouched."""
    assert not dropped_request_header(name, NONE)


@pytest.mark.parametrize(("given", "kept"), [
    ("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("", False),
    ("has space", False), ("new\nline", False), (None, False), ("id:with.dots_", True),
])
def test_request_id_kept_only_if_well_formed(given: str | None, kept: bool) -> None:
    """A client's X-Request-Id is kept when well-formed, replaced otherwise."""
    rid = request_id(given)
    assert (rid == given) is kept
    assert 1 <= len(rid) <= 128


def test_identity_headers() -> None:
    """The identity headers carry user, role, token type, public token and workspace."""
    ident = Identity("alice", Role.MEMBER, TokenType.MEMBER, "tgm_abc", "acme")
    assert dict(identity_headers(ident)) == {
        "X-Tokengate-User": "alice", "X-Tokengate-Role": "member",
        "X-Tokengate-Token-Type": "member", "X-Tokengate-Token": "tgm_abc",
        "X-Tokengate-Workspace": "acme",
    }


def test_generated_request_ids_differ_across_forked_workers() -> None:
    """Forked workers never hand out the same request id."""
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes its first id and exits
        os.write(write, request_id(None).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child_id != request_id(None) and len(child_id) == 32


def _nets(*cidrs: str):  # type: ignore[no-untyped-def]
    import ipaddress

    return tuple(ipaddress.ip_network(c) for c in cidrs)


@pytest.mark.parametrize(("peer", "xff", "trusted", "client"), [
    ("203.0.113.9", ["1.2.3.4"], (), "203.0.113.9"),  # no trusted proxies: XFF ignored
    ("203.0.113.9", ["1.2.3.4"], ("10.0.0.0/8",), "203.0.113.9"),  # untrusted peer: ignored
    ("10.0.0.2", ["198.51.100.7"], ("10.0.0.0/8",), "198.51.100.7"),
    ("10.0.0.2", ["6.6.6.6, 198.51.100.7"], ("10.0.0.0/8",), "198.51.100.7"),  # spoofed left
    ("10.0.0.2", ["198.51.100.7, 10.0.0.9"], ("10.0.0.0/8",), "198.51.100.7"),  # proxy chain
    ("10.0.0.2", ["not-an-ip"], ("10.0.0.0/8",), "10.0.0.2"),  # malformed: trust nothing
    ("10.0.0.2", [], ("10.0.0.0/8",), "10.0.0.2"),
    ("10.0.0.2", ["10.0.0.5"], ("10.0.0.0/8",), "10.0.0.5"),  # all trusted: leftmost
    ("::1", ["2001:db8::7"], ("::1/128",), "2001:db8::7"),
])
def test_client_address_behind_trusted_proxies(peer: str, xff: list[str], trusted: tuple[str, ...],
                                               client: str) -> None:
    """X-Forwarded-For names the client only behind a trusted proxy, and only its rightmost
    untrusted hop: a client cannot choose the address its failures are counted under."""
    from gateway.policy.headers import client_address

    assert client_address(peer, xff, _nets(*trusted)) == client


def test_forwarded_for_extends_a_trusted_chain_and_replaces_others() -> None:
    """Upstream sees the trusted proxy's chain plus the peer; a direct client's XFF is replaced."""
    from gateway.policy.headers import forwarded_for

    trusted = _nets("10.0.0.0/8")
    assert forwarded_for("10.0.0.2", ["198.51.100.7"], trusted) == "198.51.100.7, 10.0.0.2"
    assert forwarded_for("203.0.113.9", ["6.6.6.6"], trusted) == "203.0.113.9"
