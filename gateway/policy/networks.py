"""Network allow-lists: the client addresses one token may be used from.

The address judged is the one the failed-auth throttle counts: the peer, or
behind a proxy listed in ``proxy.trusted_proxies`` the client its
``X-Forwarded-For`` names (for a forward-auth decision, the original client
the asking proxy describes). An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``,
from a dual-stack socket) is the IPv4 client it names. An address that
cannot be read (a Unix socket peer) is in no network.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.policy.errors import Unprocessable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_NETWORKS = 64


@dataclass(frozen=True, slots=True)
class Networks:
    """The networks (IPv4 and IPv6) a token may be used from."""

    networks: tuple[Network, ...]

    def permits(self, address: str) -> bool:
        """True if ``address`` (as the data plane reads the client) lies in one of them."""
        ip = _address(address)
        return ip is not None and any(ip in network for network in self.networks)

    def to_json(self) -> list[str]:
        """The networks in CIDR notation."""
        return [str(network) for network in self.networks]


@functools.lru_cache(maxsize=4096)  # a token's clients are a handful of addresses
def _address(text: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_networks(value: object, *, field: str = "allowed_networks") -> Networks:
    """An allow-list from the admin API's JSON (CIDRs or single addresses); 422 naming the entry."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise Unprocessable(f"{field}: must be a list of networks in CIDR notation")
    if not value:
        raise Unprocessable(f"{field}: must list at least one network (leave it out for any)")
    if len(value) > MAX_NETWORKS:
        raise Unprocessable(f"{field}: at most {MAX_NETWORKS} networks")
    networks: list[Network] = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, str) or not item.strip():
            raise Unprocessable(f"{where}: must be a network in CIDR notation, such as 192.0.2.0/24")
        try:
            network = ipaddress.ip_network(item.strip())
        except ValueError as exc:
            # A "10.1.2.3/8" is most likely a typo: say what it could mean, accept nothing.
            loose = _loose(item.strip())
            hint = f" (did you mean {loose}?)" if loose is not None else ""
            raise Unprocessable(f"{where}: not a network: {exc}{hint}") from None
        networks.append(network)
    return Networks(tuple(dict.fromkeys(networks)))


def _loose(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
