"""One real stack per module: a private Redis, a recording upstream, tokengate with authz on, nginx and Caddy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.authz.proxies import PROXIES, Proxy, ThreadedUpstream
from tests.conftest import GatewayProcess, RedisServer, start_gateway

# The default deny rules stay on. The quota is generous except on one class,
# so only the quota test meets a limit; every test uses a token of its own.
CONFIG = """
[authz]
enabled = true

[rate_limit]
limit = 1000
window_seconds = 10

[rate_limit.auth_failures]
limit = 1000
window_seconds = 60

[[rate_limit.classes]]
name = "tiny"
methods = ["GET"]
path = "/api/default/quota/**"
limit = 3
window_seconds = 60
"""


@dataclass
class Stack:
    """The processes one module's tests share."""

    redis: RedisServer
    upstream: ThreadedUpstream
    gateway: GatewayProcess
    workdir: Path

    def stop(self) -> None:
        self.gateway.stop()
        self.upstream.stop()
        self.redis.stop()


def start_stack(workdir: Path) -> Stack:
    """Start Redis, the upstream and tokengate (stopping what started if a later step fails)."""
    redis = RedisServer()
    upstream = ThreadedUpstream()
    try:
        gateway = start_gateway(workdir, store_url=redis.url, upstream=upstream.url,
                                config_text=CONFIG)
    except Exception:
        upstream.stop()
        redis.stop()
        raise
    return Stack(redis, upstream, gateway, workdir)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's private Redis, upstream and tokengate process."""
    started = start_stack(tmp_path_factory.mktemp("authz"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def proxies(stack: Stack) -> Iterator[dict[str, Proxy]]:
    """nginx and Caddy with the shipped configs, asking this module's tokengate."""
    started: dict[str, Proxy] = {}
    try:
        for name, cls in PROXIES.items():
            started[name] = cls(stack.workdir / name, tokengate=stack.gateway.proxy,
                                upstream=stack.upstream.url)
        yield started
    finally:
        for proxy in started.values():
            proxy.stop()


@pytest.fixture(params=list(PROXIES))
def via(request: pytest.FixtureRequest, proxies: dict[str, Proxy], stack: Stack) -> Proxy:
    """Each proxy in turn, with the upstream's record emptied."""
    stack.upstream.seen.clear()
    return proxies[request.param]
