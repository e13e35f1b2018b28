"""The key failed authentications are counted under."""

from __future__ import annotations

import pytest

from gateway.proxy.auth import client_key


@pytest.mark.parametrize(("address", "key"), [
    ("127.0.0.1", "127.0.0.1"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),
    ("unknown", "unknown"),
])
def test_ipv6_clients_are_counted_per_64(address: str, key: str) -> None:
    """IPv4 addresses count alone; IPv6 addresses count per /64, which one client controls."""
    assert client_key(address) == key


@pytest.mark.parametrize(("address", "key"), [
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("::ffff:198.51.100.8", "198.51.100.8"),
    ("::FFFF:10.0.0.1", "10.0.0.1"),
    ("::ffff:c633:6407", "198.51.100.7"),  # the same address written in hex
    ("0:0:0:0:0:ffff:127.0.0.1", "127.0.0.1"),
])
def test_ipv4_mapped_addresses_count_as_the_ipv4_client(address: str, key: str) -> None:
    """An IPv4-mapped IPv6 address counts as its IPv4 client, not in one shared ``::/64``."""
    assert client_key(address) == key


@pytest.mark.parametrize(("address", "key"), [
    ("::1", "::/64"),
    ("::ffff:0:198.51.100.7", "::/64"),  # IPv4-translated (SIIT), not mapped
    ("2001:db8::zz", "2001:db8::zz"),  # not an address: counted as given
])
def test_other_ipv6_forms_are_not_mistaken_for_ipv4(address: str, key: str) -> None:
    """Only the ::ffff:0:0/96 mapped range is unwrapped; everything else keeps its /64."""
    assert client_key(address) == key
