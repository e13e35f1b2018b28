"""``redis+sentinel://`` URLs: find the Redis master through Sentinel.

``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``:
the sentinels to ask, the monitored service name, and the database. The
password (if any) is the master's; the sentinels are asked without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import SentinelConnectionPool

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """Where the sentinels are and which master to ask them for."""

    hosts: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Parse a ``redis+sentinel://`` URL; ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URL")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, pw = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(pw) or None
    hosts = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        host = host.strip("[]")
        if not host:
            raise ValueError(f"a sentinel needs a host, got {item!r}")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"bad sentinel port in {item!r}")
        hosts.append((host, int(port) if port else DEFAULT_PORT))
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise ValueError("the URL must name the sentinel service: redis+sentinel://host:port/SERVICE")
    if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
        raise ValueError("the path is /SERVICE or /SERVICE/DB")
    return SentinelTarget(
        hosts=tuple(hosts), service=unquote(segments[0]),
        db=int(segments[1]) if len(segments) == 2 else 0,
        username=username, password=password,
    )


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Connections to the master Sentinel names; when all are busy, wait for one.

    redis-py's Sentinel pool raises once ``max_connections`` are in use, so a
    burst would turn into 503s; like the single-server store, this one queues
    (for at most its ``timeout``) instead.
    """
