"""Redis Cluster faults, on real clusters started for these tests: redirections,
a slot migrated under load, invalidations across nodes, a primary killed, the
cluster down, and a plain redis:// URL pointed at a cluster node."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from gateway.policy.ratelimit import RateDecision
from gateway.store.base import StoreError
from gateway.store.cluster import SlotRouter, key_slot, parse_cluster_url
from gateway.store.layout import Layout
from gateway.store.redis import RedisStore
from tests.conftest import GatewayProcess, RecordingUpstream, basic
from tests.store.cluster import ClusterProcesses, Node, cluster_info
from tests.store.test_layout_crashes import token, user


@pytest.fixture(scope="module")
def spare() -> Iterator[ClusterProcesses]:
    """A cluster of this module's own, whose slots the tests move around."""
    cluster = ClusterProcesses(primaries=3)
    yield cluster
    cluster.stop()


async def owner(cluster: ClusterProcesses, key: str) -> Node:
    """The node serving the slot of ``key`` now."""
    router = SlotRouter(parse_cluster_url(cluster.url()))
    try:
        await router.refresh()
        served = router.owner(key_slot(key))
    finally:
        await router.close()
    assert served is not None
    return next(n for n in cluster.nodes if n.port == served[1])


def node_id(node: Node) -> str:
    return str(node.run("CLUSTER", "MYID"), "ascii")  # type: ignore[arg-type]


def start_migrating(slot: int, source: Node, target: Node) -> None:
    """The first half of resharding one slot: IMPORTING on the target, MIGRATING on the source."""
    target.run("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(source))
    source.run("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(target))


def move_keys(slot: int, source: Node, target: Node) -> None:
    """MIGRATE every key of the slot from source to target (each key moves atomically)."""
    while keys := source.run("CLUSTER", "GETKEYSINSLOT", slot, 100):
        source.run("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                   "KEYS", *keys)  # type: ignore[misc]


def finish_migrating(cluster: ClusterProcesses, slot: int, target: Node) -> None:
    """The slot belongs to the target, on every node (the target first)."""
    for node in sorted(cluster.primaries(), key=lambda n: n.port != target.port):
        node.run("CLUSTER", "SETSLOT", slot, "NODE", node_id(target))


def other(cluster: ClusterProcesses, node: Node) -> Node:
    return next(n for n in cluster.primaries() if n.port != node.port)


async def test_moved_updates_the_slot_and_the_call_succeeds(spare: ClusterProcesses) -> None:
    """A slot that moved since the map was read: MOVED is followed once, the answer is
    right, and the router's map names the new owner."""
    spare.flush()
    store = RedisStore(spare.url())
    key = store.keys.rate_limit("moved")
    try:
        assert (await store.hit_rate_limit("moved", 5, 30)).remaining == 4
        source = await owner(spare, key)
        target = other(spare, source)
        slot = key_slot(key)
        start_migrating(slot, source, target)
        move_keys(slot, source, target)
        finish_migrating(spare, slot, target)
        assert (await store.hit_rate_limit("moved", 5, 30)).remaining == 3
        assert store._router is not None and store._router.owner(slot) == ("127.0.0.1",
                                                                             target.port)
    finally:
        await store.close()


async def test_ask_sends_asking_and_the_command_to_the_importing_node(
        spare: ClusterProcesses) -> None:
    """A key already migrated out of a slot being resharded: ASK sends ASKING and the
    command to the importing node, which answers; the map does not change."""
    spare.flush()
    store = RedisStore(spare.url())
    key = store.keys.rate_limit("asked")
    try:
        await store.hit_rate_limit("asked", 5, 30)
        source = await owner(spare, key)
        target = other(spare, source)
        slot = key_slot(key)
        start_migrating(slot, source, target)
        move_keys(slot, source, target)
        try:
            assert (await store.hit_rate_limit("asked", 5, 30)).remaining == 3
            assert store._router is not None
            assert store._router.owner(slot) == ("127.0.0.1", source.port)
            assert target.run_asking("ZCARD", key) == 2
            assert source.run("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        finally:
            finish_migrating(spare, slot, target)
    finally:
        await store.close()


async def test_a_slot_migrated_during_a_rate_limit_run(spare: ClusterProcesses) -> None:
    """Hits before, during (MIGRATING/IMPORTING; the key moved by MIGRATE while hits are
    in flight) and after a slot moves to another primary: exactly the limit is admitted,
    each once, and the window on the new owner holds exactly those admissions."""
    spare.flush()
    store = RedisStore(spare.url())
    key = store.keys.rate_limit("busy")
    limit = 130  # admissions in every phase; the last ten hits find the window full
    decisions: list[RateDecision] = []

    async def burst(n: int) -> None:
        decisions.extend(await asyncio.gather(
            *(store.hit_rate_limit("busy", limit, 60) for _ in range(n))))

    try:
        source = await owner(spare, key)
        target = other(spare, source)
        slot = key_slot(key)
        await burst(20)  # before: on the source
        start_migrating(slot, source, target)
        await burst(20)  # migrating, the key still on the source
        await asyncio.gather(asyncio.to_thread(move_keys, slot, source, target), burst(20),
                             burst(20))  # the key moves under these
        await burst(20)  # moved: ASK to the importing node
        finish_migrating(spare, slot, target)
        await burst(40)  # after: MOVED, then the new owner
    finally:
        await store.close()
    admitted = [d for d in decisions if d.allowed]
    assert len(decisions) == 140 and len(admitted) == limit
    assert sorted(d.remaining for d in admitted) == list(range(limit))
    assert target.run("ZCARD", key) == limit
    assert source.run("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


async def test_tryagain_while_a_workspace_is_split_fails_closed(spare: ClusterProcesses) -> None:
    """A script whose keys are half migrated gets TRYAGAIN: the call fails with
    StoreError (a 503), writes nothing, and works once the slot has moved."""
    spare.flush()
    store = RedisStore(spare.url())
    layout = Layout()
    try:
        await store.add_user(user())
        await store.create_token(token("t1"))
        index = layout.ws("acme", "tokens")
        source = await owner(spare, index)
        target = other(spare, source)
        slot = key_slot(index)
        start_migrating(slot, source, target)
        source.run("MIGRATE", "127.0.0.1", target.port, index, 0, 5000)
        try:
            with pytest.raises(StoreError):
                await store.create_token(token("t2"))
            assert await store.get_token("t2") is None
        finally:
            move_keys(slot, source, target)
            finish_migrating(spare, slot, target)
        await store.create_token(token("t3"))
        assert [r.token for r in await store.list_tokens("acme")] == ["t1", "t3"]
    finally:
        await store.close()


async def subscribers(node: Node) -> int:
    reply = node.run("PUBSUB", "NUMSUB", "tg:invalidate")
    return int(reply[1])  # type: ignore[index]


def gateway_at(factory, cluster: ClusterProcesses, first: Node, upstream: RecordingUpstream,
               master: str) -> GatewayProcess:  # type: ignore[no-untyped-def]
    """A gateway whose URL lists ``first`` first (it subscribes there)."""
    gp: GatewayProcess = factory(store_url=cluster.url(cluster.nodes.index(first)),
                                 upstream=upstream.url, master_key=master,
                                 extra_env={"TOKENGATE_LOG_ACCESS": "false",
                                            "TOKENGATE_RATE_LIMIT_LIMIT": "1000000"})
    return gp


async def status_of(session: aiohttp.ClientSession, url: str, auth: str) -> int:
    async with session.get(url, headers={"Authorization": auth}) as r:
        await r.read()
        return r.status


async def test_revocation_reaches_a_gateway_listening_on_another_node(
        gateway_factory, redis_cluster: ClusterProcesses, cluster_url: str,  # type: ignore[no-untyped-def]
        upstream: RecordingUpstream) -> None:
    """A token revoked on gateway A (its script runs on the workspace's primary) is
    refused by gateway B, subscribed on another node, within 1 s."""
    from gateway.keys import generate_master_key

    master = generate_master_key()
    home = await owner(redis_cluster, Layout().ws("default", "tokens"))
    away = other(redis_cluster, home)
    a = gateway_at(gateway_factory, redis_cluster, home, upstream, master)
    b = gateway_at(gateway_factory, redis_cluster, away, upstream, master)
    assert await subscribers(away) >= 1
    _, tok = a.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "x"})
    auth = basic(tok["token"], tok["secret"])
    async with aiohttp.ClientSession() as s:
        assert await status_of(s, b.proxy + "/r", auth) == 200  # cached on B now
        assert a.admin_call("DELETE", f"/admin/api/tokens/{tok['token']}")[0] == 200
        revoked_at = time.monotonic()
        while await status_of(s, b.proxy + "/r", auth) != 401:
            assert time.monotonic() - revoked_at < 1.0, "B still serves the revoked token"
            await asyncio.sleep(0.01)


def test_redis_url_at_a_cluster_node_is_refused_at_start(
        gateway_factory, redis_cluster: ClusterProcesses, upstream: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """`serve --store redis://<a cluster node>` stops at start, naming redis+cluster://."""
    url = f"redis://127.0.0.1:{redis_cluster.nodes[0].port}/0"
    with pytest.raises(RuntimeError, match=r"redis\+cluster://host:port"):
        gateway_factory(store_url=url, upstream=upstream.url)


async def until(what: str, check, deadline: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Await ``check()`` until true; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not await check():
        assert time.monotonic() < end, what
        await asyncio.sleep(0.05)


async def ready(session: aiohttp.ClientSession, gp: GatewayProcess) -> int:
    async with session.get(gp.admin + "/readyz") as r:
        return r.status


async def test_readyz_is_503_while_the_cluster_is_down(
        gateway_factory, upstream: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """With a primary gone (and no replica to take over) /readyz answers 503 and requests
    503 (never a pass-through), while /healthz stays 200."""
    cluster = ClusterProcesses(primaries=3, node_timeout_ms=1000)
    try:
        gp = gateway_factory(store_url=cluster.url(), upstream=upstream.url)
        _, tok = gp.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "x"})
        auth = basic(tok["token"], tok["secret"])
        async with aiohttp.ClientSession() as s:
            assert await ready(s, gp) == 200
            victim = await owner(cluster, Layout().rate_limit(f"default:t:{tok['token']}"))
            cluster.kill(victim)
            await until("readyz 503", lambda: _is(ready(s, gp), 503))
            await until("survivors report the cluster down", lambda: _down(cluster))
            assert await ready(s, gp) == 503
            assert await status_of(s, gp.proxy + "/r", auth) == 503
            async with s.get(gp.admin + "/healthz") as r:
                assert r.status == 200
    finally:
        cluster.stop()


async def _is(status: object, want: int) -> bool:
    return await status == want  # type: ignore[misc]


async def _down(cluster: ClusterProcesses) -> bool:
    return all(cluster_info(n)["cluster_state"] == "fail" for n in cluster.live())


async def test_a_primary_killed_under_load(gateway_factory, upstream: RecordingUpstream) -> None:  # type: ignore[no-untyped-def]
    """Requests while the workspace's primary dies and its replica takes over are
    answered 200 or 503, nothing else (a credential that could not be loaded counts no
    failed attempt, so no 429); after the failover they succeed again, and the gateway
    that listened on the dead node hears invalidations again (it resubscribed)."""
    from gateway.keys import generate_master_key

    cluster = ClusterProcesses(primaries=3, replicas=1, node_timeout_ms=1000)
    try:
        master = generate_master_key()
        probe = gateway_at(gateway_factory, cluster, cluster.nodes[0], upstream, master)
        _, tok = probe.admin_call("POST", "/admin/api/tokens", {"type": "workspace", "name": "x"})
        auth = basic(tok["token"], tok["secret"])
        # The workspace's primary: credential loads, the revocation and (the
        # listener subscribed there) every invalidation depend on it.
        victim = await owner(cluster, Layout().ws("default", "tokens"))
        listener = gateway_at(gateway_factory, cluster, victim, upstream, master)
        assert await subscribers(victim) >= 1
        statuses: list[int] = []
        stop = asyncio.Event()

        async def load(session: aiohttp.ClientSession) -> None:
            while not stop.is_set():
                statuses.append(await status_of(session, listener.proxy + "/r", auth))

        async with aiohttp.ClientSession() as s:
            workers = [asyncio.ensure_future(load(s)) for _ in range(4)]
            await until("load flows", lambda: _seen(statuses, 200, 20))
            cluster.kill(victim)
            await until("503 while the primary is gone", lambda: _seen(statuses, 503, 1))
            cluster.wait_failover(primaries=3)  # its replica was promoted
            healed = len(statuses)
            await until("200 again after the failover",
                        lambda: _seen(statuses[healed:], 200, 20))
            stop.set()
            await asyncio.gather(*workers)
            assert set(statuses) == {200, 503}
            assert probe.admin_call("DELETE", f"/admin/api/tokens/{tok['token']}")[0] == 200
            await until("the revocation reached the resubscribed gateway",
                        lambda: _is(status_of(s, listener.proxy + "/r", auth), 401), 10)
            await until("ready again", lambda: _is(ready(s, listener), 200), 10)
    finally:
        cluster.stop()


async def _seen(statuses: list[int], status: int, count: int) -> bool:
    return statuses.count(status) >= count
