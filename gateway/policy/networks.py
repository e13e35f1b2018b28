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
from dataclasses import dataclass, field

from gateway.policy.errors import Unprocessable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_NETWORKS = 64


@dataclass(frozen=True, slots=True)
class Networks:
    """The networks (IPv4 and IPv6) a token may be used from."""

    networks: tuple[Network, ...]
    # Derived once, for the hot path: (version, netmask, network address) as integers.
    _ranges: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ranges", tuple(
            (n.version, int(n.netmask), int(n.network_address)) for n in self.networks))

    def permits(self, address: str) -> bool:
        """True if ``address`` (as the data plane reads the client) lies in one of them."""
        ip = _address(address)
        if ip is None:
            return False
        version, value = ip
        for v, mask, net in self._ranges:
            if v == version and value & mask == net:
                return True
        return False

    def to_json(self) -> list[str]:
        """The networks in CIDR notation."""
        return [str(network) for network in self.networks]


@functools.lru_cache(maxsize=4096)  # a token's clients are a handful of addresses
def _address(text: str) -> tuple[int, int] | None:
    """(IP version, address as an integer), or None for what is no IP address."""
    try:
        ip: Address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version, int(ip)


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
