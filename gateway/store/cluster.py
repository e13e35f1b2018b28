"""Redis Cluster: ``redis+cluster://`` URLs, key slots, and the hot path's router.

``redis+cluster://[[user]:password@]host:port[,host:port...]`` (``rediss+cluster://``
for TLS) names some nodes of the cluster; the rest are found from them. The
control plane goes through redis-py's cluster client; the hot path (the
rate-limit script) through :class:`SlotRouter`, which keeps one lean pipelined
connection (``resp.RespConnection``) per primary and sends each command to the
primary serving its key's slot. redis-py's cluster client costs about 7 times
the CPU of the lean connection per call; the router adds a CRC16 and a list
lookup.

Redirections: ``MOVED`` (the slot has a new owner) updates that slot, asks for
the whole map again in the background, and resends the command once; ``ASK``
(the slot is being migrated and this key already left) sends ``ASKING`` and the
command to the node named, without changing the map. A node that cannot be
reached at all (nothing was sent) has the map asked for again, and the
command goes to the slot's new owner if there is one (a promoted replica).
Anything else (``TRYAGAIN``, ``CLUSTERDOWN``, a second redirection, a node lost
with the command in flight, which may have run) fails the call, which the
store answers with 503, and has the map asked for again in the background.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from gateway.store.resp import RespConnection, RespError, RespReplyError, pack

SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379
SLOTS = 16384
REFRESH_EVERY = 0.1  # at most this often (seconds) while calls keep failing
NOT_CONNECTED = "cannot connect"  # resp.RespConnection's error when nothing was sent
Node = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ClusterTarget:
    """Some nodes of a cluster and how to talk to them."""

    nodes: tuple[Node, ...]
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def node_url(self, node: Node) -> str:
        """A ``redis://`` URL of one node, with the credentials."""
        auth = ""
        if self.password:
            auth = f"{quote(self.username or '')}:{quote(self.password)}@"
        elif self.username:
            auth = f"{quote(self.username)}@"
        host = f"[{node[0]}]" if ":" in node[0] else node[0]
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{node[1]}/0"


def parse_cluster_url(url: str) -> ClusterTarget:
    """Parse a ``redis+cluster://`` URL; ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError("not a redis+cluster:// URL")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, pw = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(pw) or None
    nodes: list[Node] = []
    for item in hostlist.split(","):
        item = item.strip()
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host:
            raise ValueError(f"a cluster node needs a host, got {item!r}")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"bad cluster node port in {item!r}")
        nodes.append((host, int(port) if port else DEFAULT_PORT))
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("a cluster has only database 0: drop the path")
    if parts.query or parts.fragment:
        raise ValueError("a cluster URL takes no query or fragment")
    return ClusterTarget(tuple(nodes), tls=parts.scheme == "rediss+cluster",
                         username=username, password=password)


def key_slot(key: str | bytes) -> int:
    """The cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of all of it."""
    raw = key.encode() if isinstance(key, str) else key
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1:end]
    return binascii.crc_hqx(raw, 0) % SLOTS


def _redirect(message: str) -> tuple[str, int, Node] | None:
    """``MOVED``/``ASK``, the slot and the node of a redirection reply, else None."""
    kind, _, rest = message.partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, where = rest.partition(" ")
    host, _, port = where.rpartition(":")
    return kind, int(slot), (host.strip("[]"), int(port))


def slot_map(reply: Any, asked: Node) -> list[Node | None]:
    """Who serves each slot, from a ``CLUSTER SLOTS`` reply (asked of ``asked``)."""
    owners: list[Node | None] = [None] * SLOTS
    for start, end, primary, *_replicas in reply:
        host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        # An empty or "?" host means "the address you reached me on".
        node = (host if host not in ("", "?") else asked[0], int(primary[1]))
        owners[int(start):int(end) + 1] = [node] * (int(end) - int(start) + 1)
    return owners


class SlotRouter:
    """One lean connection per primary; each command to its key's slot owner."""

    def __init__(self, target: ClusterTarget, *, timeout: float = 2.0) -> None:
        self.target = target
        self._timeout = timeout
        self._owners: list[Node | None] = [None] * SLOTS
        self._conns: dict[Node, RespConnection] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._refreshed_at = 0.0

    def connection(self, node: Node) -> RespConnection:
        """The lean connection to one node (opened on first use)."""
        conn = self._conns.get(node)
        if conn is None:
            conn = self._conns[node] = RespConnection(self.target.node_url(node),
                                                      timeout=self._timeout)
        return conn

    def owner(self, slot: int) -> Node | None:
        """The primary serving ``slot`` in the last map."""
        return self._owners[slot]

    def primaries(self) -> list[Node]:
        """The primaries of the last map, in slot order."""
        return list(dict.fromkeys(n for n in self._owners if n is not None))

    def nodes(self) -> list[Node]:
        """The URL's nodes first, then the other primaries known: where to subscribe."""
        return list(dict.fromkeys([*self.target.nodes, *self.primaries()]))

    async def call(self, command: bytes, *, key: str | None = None) -> Any:
        """Send a packed command about ``key`` to the primary serving its slot."""
        if key is None:
            raise ValueError("a cluster routes by key: name the key the command is about")
        slot = key_slot(key)
        node = self._owners[slot]
        if node is None:
            await self.refresh()
            node = self._owners[slot]
            if node is None:
                raise RespError(f"CLUSTERDOWN no primary serves slot {slot}")
        try:
            try:
                return await self.connection(node).call(command)
            except RespError as exc:
                if not str(exc).startswith(NOT_CONNECTED):
                    raise
                # Nothing was sent: after a failover the slot has a new owner,
                # which the map, asked again, names.
                await self.refresh()
                moved_to = self._owners[slot]
                if moved_to is None or moved_to == node:
                    raise
                return await self.connection(moved_to).call(command)
        except RespReplyError as exc:
            redirect = _redirect(str(exc))
            if redirect is None:
                raise
            kind, moved_slot, to = redirect
            if kind == "ASK":
                return (await self.connection(to).call_many(pack("ASKING"), command))[-1]
            self._owners[moved_slot] = to
            self.refresh_soon()
            return await self.connection(to).call(command)  # once: a second MOVED fails
        except RespError:
            self.refresh_soon()  # a lost node: a replica may be taking over
            raise

    def refresh_soon(self) -> None:
        """Ask for the slot map in the background (at most every REFRESH_EVERY)."""
        if self._refresh is None and time.monotonic() - self._refreshed_at >= REFRESH_EVERY:
            self._refresh = asyncio.ensure_future(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(RespError):
            await self._ask_for_map()

    async def refresh(self) -> None:
        """Ask for the slot map now (joining a refresh under way; one that ended less
        than REFRESH_EVERY ago stands, so failing calls under load ask seldom)."""
        if self._refresh is None:
            if self._refreshed_at and time.monotonic() - self._refreshed_at < REFRESH_EVERY:
                return
            self._refresh = asyncio.ensure_future(self._ask_for_map())
        await asyncio.shield(self._refresh)

    async def _ask_for_map(self) -> None:
        try:
            last: Exception | None = None
            for node in self._candidates():
                try:
                    reply = await self.connection(node).call(pack("CLUSTER", "SLOTS"))
                except RespError as exc:
                    last = exc
                    continue
                self._owners = slot_map(reply, node)
                return
            raise RespError(f"no cluster node answered: {last}")
        finally:
            self._refresh = None
            self._refreshed_at = time.monotonic()

    def _candidates(self) -> Iterable[Node]:
        return dict.fromkeys([*self.primaries(), *self.target.nodes])

    async def check_state(self) -> None:
        """Raise RespError unless every primary answers and reports ``cluster_state:ok``.

        The map is read again first: readiness is asked seldom, and must judge
        the primaries there are now (a promoted replica), not those of the
        last failure.
        """
        await self.refresh()
        for node in self.primaries():
            info = await self.connection(node).call(pack("CLUSTER", "INFO"))
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text:
                raise RespError(f"CLUSTERDOWN {node[0]}:{node[1]} reports the cluster down")

    async def close(self) -> None:
        """Close every connection."""
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._refresh
        for conn in self._conns.values():
            await conn.close()
        self._conns.clear()
