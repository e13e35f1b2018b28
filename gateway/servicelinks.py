"""Kubernetes service-link variables, recognised so the settings loader can skip them.

For every Service in its namespace Kubernetes writes Docker-link style
variables into each pod (unless the pod sets ``enableServiceLinks: false``).
A Service named ``tokengate-redis`` yields ``TOKENGATE_REDIS_SERVICE_HOST``,
``TOKENGATE_REDIS_PORT_6379_TCP_ADDR`` and so on, which share the settings'
``TOKENGATE_`` prefix. A variable is taken for one only when both its name
and its value have the shape Kubernetes writes (``kubelet/envvars``), so a
misspelt setting such as ``TOKENGATE_STORE_URLL`` is still refused.
"""

from __future__ import annotations

import ipaddress
import re

# <SERVICE>_SERVICE_HOST, <SERVICE>_SERVICE_PORT[_<PORT NAME>], <SERVICE>_PORT,
# <SERVICE>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]. The service part is lazy, so
# the longest (most specific) suffix wins.
_NAME = re.compile(
    r"(?P<service>[A-Z0-9_]+?)_(?:"
    r"(?P<host>SERVICE_HOST)"
    r"|(?P<sport>SERVICE_PORT(?:_[A-Z0-9_]+)?)"
    r"|PORT_(?P<num>[0-9]{1,5})_(?P<proto>TCP|UDP|SCTP)(?:_(?P<part>PROTO|PORT|ADDR))?"
    r"|(?P<url>PORT)"
    r")"
)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_port(value: str) -> bool:
    return value.isascii() and value.isdigit() and 0 < int(value) <= 65535


def _is_link_url(value: str, proto: str | None = None, port: str | None = None) -> bool:
    """``proto://host:port`` as Kubernetes writes it for ``<SERVICE>_PORT[_<n>_<PROTO>]``.

    The host is the cluster IP; IPv6 in brackets (``net.JoinHostPort``), or
    bare where older kubelets wrote ``%s://%s:%d``.
    """
    scheme, sep, rest = value.partition("://")
    host, colon, port_s = rest.rpartition(":")
    if not sep or not colon or scheme not in ("tcp", "udp", "sctp"):
        return False
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (_is_ip(host) and _is_port(port_s)
            and (proto is None or scheme == proto.lower()) and (port is None or port_s == port))


def is_service_link(name: str, value: str) -> bool:
    """True if ``name=value`` is a variable Kubernetes writes for a Service."""
    m = _NAME.fullmatch(name)
    if m is None:
        return False
    if m["host"]:
        return _is_ip(value)
    if m["sport"]:
        return _is_port(value)
    if m["url"]:
        return _is_link_url(value)
    num, proto, part = m["num"], m["proto"], m["part"]
    if part is None:
        return _is_link_url(value, proto, num)
    if part == "PROTO":
        return value == proto.lower()
    if part == "PORT":
        return value == num and _is_port(value)
    return _is_ip(value)  # ADDR
