"""Which ``Host`` headers the admin listener answers (a defence against DNS rebinding).

A page on ``evil.example`` can make the victim's browser resolve that name to
127.0.0.1 and then read the admin listener's open endpoints as if they were
its own origin. The browser still sends ``Host: evil.example``: refusing
names the operator did not list closes the hole. Rules, in order:

* no ``Host`` header at all: allowed (browsers always send one);
* ``*`` in ``admin.allowed_hosts``: everything is allowed (the check is off);
* a loopback name or address (``localhost``, ``127.0.0.0/8``, ``::1``), the
  listen host, and the names in ``admin.allowed_hosts``: allowed, any port;
* any IP literal when the listener binds a wildcard (``0.0.0.0``, ``::``):
  every address of the machine is then "the listen address", and an IP
  literal cannot be rebound. This keeps kubelet probes and Prometheus, which
  send ``Host: <pod IP>:<port>``, working.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"localhost"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def host_name(header: str) -> str:
    """The host of a ``Host`` header value: lower case, no port, no brackets, no final dot."""
    value = header.strip().lower()
    if value.startswith("["):
        inside, sep, _ = value[1:].partition("]")
        return inside if sep else value
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        value = name
    return value.removesuffix(".")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class HostAllowList:
    """The host names one admin listener answers."""

    names: frozenset[str]
    any_ip: bool
    any_host: bool

    @classmethod
    def build(cls, listen_host: str, allowed: Iterable[str]) -> HostAllowList:
        """The list for a listener on ``listen_host`` with the configured extra names."""
        extra = {host_name(h) for h in allowed}
        listen = host_name(listen_host)
        wildcard = listen in WILDCARD_HOSTS
        names = LOOPBACK_NAMES | extra | (set() if wildcard else {listen})
        return cls(frozenset(names - {"*"}), any_ip=wildcard, any_host="*" in extra)

    def allows(self, header: str | None) -> bool:
        """May a request with this ``Host`` header (None: absent) be answered?"""
        if header is None or self.any_host:
            return True
        host = host_name(header)
        if host in self.names:
            return True
        ip = _ip(host)
        if ip is None:
            return False
        return self.any_ip or ip.is_loopback or str(ip) in self.names
