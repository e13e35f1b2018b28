"""Bearer tokens are cached per process and the cache obeys pushed invalidations."""

from __future__ import annotations

import asyncio
import re
import urllib.request

from tests.conftest import GatewayProcess
from tests.trusted.conftest import REVOKE, StartTrusted, Trusted


def load_bearer_calls(gp: GatewayProcess) -> float:
    """How many times this process asked the store for a bearer (from /metrics)."""
    with urllib.request.urlopen(gp.admin + "/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.search(r'tokengate_store_duration_seconds_count\{operation="load_bearer"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


async def refused_within(t: Trusted, token: str, seconds: float = 1.0) -> bool:
    """Poll (in small steps) until the bearer is refused, for at most ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if (await t.call(token)).status == 401:
            return True
        await asyncio.sleep(0.02)
    return (await t.call(token)).status == 401


async def cached_on_two(start_trusted: StartTrusted) -> tuple[Trusted, Trusted, str]:
    """Two gateways on one Redis and a bearer that the second one has cached."""
    a = await start_trusted()
    b = await start_trusted(seed=False, master_key=a.gp.env["TOKENGATE_MASTER_KEY"])
    token = await a.bearer(await a.enable())
    assert (await b.call(token)).status == 200
    return a, b, token


async def test_repeat_requests_use_the_cached_bearer(ta: Trusted) -> None:
    """After the first request, a bearer's requests make no further store lookups."""
    key = await ta.enable()
    token = await ta.bearer(key)
    assert (await ta.call(token)).status == 200
    first = load_bearer_calls(ta.gp)
    for _ in range(5):
        assert (await ta.call(token)).status == 200
    assert first >= 1 and load_bearer_calls(ta.gp) == first


async def test_revoking_on_one_process_refuses_on_another_within_a_second(
    start_trusted: StartTrusted,
) -> None:
    """A bearer cached by a second gateway is refused there within 1 s of a revoke."""
    a, b, token = await cached_on_two(start_trusted)  # b caches it
    reply = await a.post(REVOKE, json_body={"token": token},
                         headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 204
    assert await refused_within(b, token)


async def test_disabling_on_one_process_refuses_cached_bearers_elsewhere(
    start_trusted: StartTrusted,
) -> None:
    """Disabling trusted auth drops every process's cached bearers of that key at once."""
    a, b, token = await cached_on_two(start_trusted)
    assert (await a.admin("DELETE", "/workspaces/default/trusted-auth")).status == 200
    assert await refused_within(b, token)


async def test_removing_the_user_refuses_their_cached_bearer(start_trusted: StartTrusted) -> None:
    """Removing a user drops their cached bearers on every process."""
    a, b, token = await cached_on_two(start_trusted)
    assert (await a.admin("DELETE", "/users/bob")).status == 200
    assert await refused_within(b, token)
