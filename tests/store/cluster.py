"""A real Redis Cluster of redis-server processes, started by the test run.

No external tool: each node starts with ``--cluster-enabled yes``, the slots
are split with ``CLUSTER ADDSLOTSRANGE``, the nodes are joined with ``CLUSTER
MEET``, replicas follow with ``CLUSTER REPLICATE``, and start-up waits (with a
deadline) until every node reports ``cluster_state:ok`` and knows every other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from tests.conftest import free_port, stop_server

SLOTS = 16384
START_DEADLINE = 60.0  # seconds; a busy 2-core machine can be slow to converge


def wait_for(what: str, check: Callable[[], bool], deadline: float = START_DEADLINE) -> None:
    """Poll ``check`` until it holds; RuntimeError naming ``what`` after ``deadline``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the test cluster did not get there: {what}")


@dataclass
class Node:
    """One redis-server process of the cluster."""

    port: int
    bus: int
    dir: str
    proc: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        """A plain client of this node alone (closed by the caller)."""
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def run(self, *args: str | int) -> object:
        """One command on this node."""
        with self.client() as c:
            return c.execute_command(*args)

    def run_asking(self, *args: str | int) -> object:
        """One command on this node after ASKING (for a slot it is importing)."""
        with redis.Redis(port=self.port, socket_timeout=5, single_connection_client=True) as c:
            c.execute_command("ASKING")
            return c.execute_command(*args)

    def info(self, section: str) -> dict[str, object]:
        """``INFO section`` of this node."""
        with self.client() as c:
            return dict(c.info(section))

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None


class ClusterProcesses:
    """``primaries`` nodes holding the slots, each with ``replicas`` replicas."""

    def __init__(self, primaries: int = 3, replicas: int = 0, *,
                 node_timeout_ms: int = 15000) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed; run scripts/test, which installs it")
        self.exe = exe
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[Node] = []
        try:
            for _ in range(primaries * (1 + replicas)):
                self.nodes.append(self._start())
            self._assign_slots(self.nodes[:primaries])
            self._meet()
            for i, replica in enumerate(self.nodes[primaries:]):
                self._replicate(replica, self.nodes[i % primaries])
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Node:
        port, bus = free_port(), free_port()
        workdir = tempfile.mkdtemp(prefix="tokengate-cluster-")
        proc = subprocess.Popen(
            [self.exe, "--port", str(port), "--cluster-port", str(bus), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file",
             os.path.join(workdir, "nodes.conf"), "--cluster-node-timeout",
             str(self.node_timeout_ms), "--save", "", "--appendonly", "no", "--dir", workdir,
             "--logfile", os.path.join(workdir, "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        node = Node(port, bus, workdir, proc)
        wait_for(f"node {port} answers", lambda: node.run("PING") is True)
        return node

    @staticmethod
    def _assign_slots(primaries: list[Node]) -> None:
        per = SLOTS // len(primaries)
        for i, node in enumerate(primaries):
            last = SLOTS - 1 if i == len(primaries) - 1 else (i + 1) * per - 1
            node.run("CLUSTER", "ADDSLOTSRANGE", i * per, last)

    def _meet(self) -> None:
        first = self.nodes[0]
        for node in self.nodes[1:]:
            first.run("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus)
        count = str(len(self.nodes))
        wait_for("every node knows every other", lambda: all(
            cluster_info(n)["cluster_known_nodes"] == count for n in self.nodes))

    @staticmethod
    def _replicate(replica: Node, primary: Node) -> None:
        primary_id = str(primary.run("CLUSTER", "MYID"), "ascii")  # type: ignore[arg-type]
        wait_for(f"{replica.port} sees its primary",
                 lambda: primary_id in str(replica.run("CLUSTER", "NODES")))
        replica.run("CLUSTER", "REPLICATE", primary_id)
        wait_for(f"{replica.port} follows {primary.port}",
                 lambda: replica.info("replication").get("master_link_status") == "up")

    def live(self) -> list[Node]:
        """The nodes whose process runs."""
        return [n for n in self.nodes if n.alive()]

    def primaries(self) -> list[Node]:
        """The live nodes that are primaries now (a failover changes which)."""
        return [n for n in self.live() if n.info("replication").get("role") == "master"]

    def wait_ok(self, deadline: float = START_DEADLINE) -> None:
        """Until every live node reports the cluster ok, with every slot served."""
        def ok() -> bool:
            return all(cluster_info(n)["cluster_state"] == "ok"
                       and cluster_info(n)["cluster_slots_ok"] == str(SLOTS)
                       for n in self.live())

        wait_for("cluster_state:ok on every node", ok, deadline)

    def wait_failover(self, primaries: int, deadline: float = START_DEADLINE) -> None:
        """Until ``primaries`` live nodes are primaries again (a replica of a dead one
        was promoted, so the failure was seen) and every live node reports ok."""
        wait_for(f"{primaries} primaries again", lambda: len(self.primaries()) == primaries,
                 deadline)
        self.wait_ok(deadline)

    def url(self, first: int = 0, scheme: str = "redis+cluster") -> str:
        """A ``redis+cluster://`` URL listing every live node, node ``first`` first."""
        order = [self.nodes[first], *(n for i, n in enumerate(self.nodes) if i != first)]
        return f"{scheme}://" + ",".join(f"127.0.0.1:{n.port}" for n in order if n.alive())

    def flush(self) -> None:
        """Empty every primary (replicas follow)."""
        for node in self.primaries():
            node.run("FLUSHALL")

    def kill(self, node: Node) -> None:
        """Kill one node's process at once (no shutdown, as a crash)."""
        node.proc.kill()
        node.proc.wait(10)

    def stop(self) -> None:
        """Stop every node and remove its directory."""
        for node in self.nodes:
            stop_server(node.proc, node.dir)


def cluster_info(node: Node) -> dict[str, str]:
    """``CLUSTER INFO`` of one node."""
    reply = node.run("CLUSTER", "INFO")
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    raw = reply.decode() if isinstance(reply, bytes) else str(reply)
    return dict(line.split(":", 1) for line in raw.split() if ":" in line)
