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
