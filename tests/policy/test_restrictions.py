"""Network allow-lists, a token's own rate limit, and how restrictions are kept."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.policy.errors import Unprocessable
from gateway.policy.networks import parse_networks
from gateway.policy.restrictions import (
    Restrictions,
    TokenLimit,
    from_stored,
    parse_rate_limit,
    parse_restrictions,
    stored_fields,
)
from gateway.policy.scopes import NO_GRANTS, READ_ONLY

NETWORKS = ["192.0.2.0/24", "198.51.100.7", "2001:db8::/32"]


@pytest.mark.parametrize(("address", "expected"), [
    ("192.0.2.1", True),
    ("192.0.2.255", True),
    ("192.0.3.1", False),
    ("198.51.100.7", True),
    ("198.51.100.8", False),
    ("2001:db8::1", True),
    ("2001:db8:ffff::1", True),
    ("2001:db9::1", False),
    ("::ffff:192.0.2.9", True),  # a dual-stack socket's view of an IPv4 client
    ("::ffff:10.0.0.1", False),
    ("fe80::1%eth0", False),
    ("unknown", False),  # a peer that is no IP address (a Unix socket)
    ("", False),
])
def test_an_address_is_allowed_only_inside_a_listed_network(address: str, expected: bool) -> None:
    """IPv4 and IPv6 networks and single addresses; anything unreadable is outside."""
    assert parse_networks(NETWORKS).permits(address) is expected


def test_networks_read_back_in_cidr_notation_once_each() -> None:
    """A single address is its /32 (or /128); repeats collapse."""
    networks = parse_networks(["198.51.100.7", "2001:db8::1", "198.51.100.7/32"])
    assert networks.to_json() == ["198.51.100.7/32", "2001:db8::1/128"]


@pytest.mark.parametrize(("value", "field", "words"), [
    ("192.0.2.0/24", "allowed_networks", "list of networks"),
    ([], "allowed_networks", "at least one"),
    (["192.0.2.0/24"] * 65, "allowed_networks", "at most 64"),
    (["10.0.0.0/8", "10.1.2.3/8"], "allowed_networks[1]", "did you mean 10.0.0.0/8"),
    (["192.0.2.0/33"], "allowed_networks[0]", "not a network"),
    (["example.com"], "allowed_networks[0]", "not a network"),
    (["2001:db8::/129"], "allowed_networks[0]", "not a network"),
    ([""], "allowed_networks[0]", "CIDR notation"),
    ([24], "allowed_networks[0]", "CIDR notation"),
])
def test_bad_networks_are_refused_naming_the_entry(value: Any, field: str, words: str) -> None:
    """A bad CIDR is a 422 naming allowed_networks and the entry's position."""
    with pytest.raises(Unprocessable) as caught:
        parse_networks(value)
    assert caught.value.extra["field"] == field
    assert words in caught.value.detail


@pytest.mark.parametrize(("value", "field"), [
    (5, "rate_limit"),
    ({"limit": 5}, "rate_limit.window_seconds"),
    ({"window_seconds": 10}, "rate_limit.limit"),
    ({"limit": 0, "window_seconds": 10}, "rate_limit.limit"),
    ({"limit": 2.5, "window_seconds": 10}, "rate_limit.limit"),
    ({"limit": True, "window_seconds": 10}, "rate_limit.limit"),
    ({"limit": 5, "window_seconds": 0}, "rate_limit.window_seconds"),
    ({"limit": 5, "window_seconds": -1}, "rate_limit.window_seconds"),
    ({"limit": 5, "window_seconds": 86401}, "rate_limit.window_seconds"),
    ({"limit": 5, "window_seconds": float("nan")}, "rate_limit.window_seconds"),
    ({"limit": 5, "window_seconds": "10"}, "rate_limit.window_seconds"),
    ({"limit": 5, "window_seconds": 10, "burst": 2}, "rate_limit"),
])
def test_a_bad_rate_limit_is_refused_naming_the_field(value: Any, field: str) -> None:
    """The token's own limit needs a whole limit of at least 1 and a window of (0, 86400] s."""
    with pytest.raises(Unprocessable) as caught:
        parse_rate_limit(value)
    assert caught.value.extra["field"] == field


def test_a_rate_limit_reads_back_as_given() -> None:
    """Whole seconds stay whole; fractions stay fractions."""
    assert parse_rate_limit({"limit": 5, "window_seconds": 60}).to_json() == \
        {"limit": 5, "window_seconds": 60}
    assert parse_rate_limit({"limit": 5, "window_seconds": 0.5}) == TokenLimit(5, 0.5)


def test_nothing_restricted_is_none_so_the_hot_path_tests_one_attribute() -> None:
    """No field given, or the last one taken away, leaves no Restrictions object."""
    assert parse_restrictions(class_names=[]) is None
    limited = parse_restrictions(rate_limit={"limit": 1, "window_seconds": 1}, class_names=[])
    assert limited is not None and limited.with_rate_limit(None) is None


def test_restrictions_survive_the_store_round_trip() -> None:
    """What the store keeps (JSON fields) reads back equal, and unrestricted keeps nothing."""
    restrictions = parse_restrictions(
        scopes=[READ_ONLY, {"methods": ["POST"], "path": "/api/{workspace}/runs"}],
        allowed_networks=NETWORKS, rate_limit={"limit": 3, "window_seconds": 60},
        class_names=[])
    fields = stored_fields(restrictions)
    assert set(fields) == {"scopes", "allowed_networks", "rate_limit"}
    assert from_stored(fields) == restrictions
    assert stored_fields(None) == {} and from_stored({}) is None
    only_networks = parse_restrictions(allowed_networks=NETWORKS, class_names=[])
    assert set(stored_fields(only_networks)) == {"allowed_networks"}


@pytest.mark.parametrize("fields", [
    {"scopes": "not json"},
    {"scopes": "[]"},
    {"allowed_networks": '["nonsense"]'},
    {"rate_limit": '{"limit": 0}'},
])
def test_restrictions_that_cannot_be_read_back_allow_nothing(fields: dict[str, str]) -> None:
    """A garbled stored restriction fails closed: scopes that grant nothing."""
    assert from_stored(fields) == Restrictions(scopes=NO_GRANTS)
