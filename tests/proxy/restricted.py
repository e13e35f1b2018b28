"""Helpers for the end-to-end tests of restricted and rolled tokens: a real gateway
process on the run's Redis in front of the recording upstream, called over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.admin.support import Gw, Reply, _reply
from tests.conftest import GatewayProcess, RecordingUpstream, basic


class Plane(Gw):
    """A running gateway: the admin API (as :class:`Gw`), proxied requests, metrics."""

    async def send(self, created: dict[str, Any], path: str = "/api/default/reports",
                   method: str = "GET", headers: dict[str, str] | None = None,
                   secret: str | None = None) -> Reply:
        """A proxied request with a create (or roll) response's credentials."""
        auth = basic(created["token"], secret if secret is not None else created["secret"])
        async with self.session.request(method, self.gp.proxy + path,
                                        headers={"Authorization": auth, **(headers or {})}
                                        ) as resp:
            return await _reply(resp)

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on the admin listener's /metrics (0 if absent)."""
        async with self.session.get(self.gp.admin + "/metrics") as resp:
            text = await resp.text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v
                                               for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


def start_plane(gateway_factory: Callable[..., GatewayProcess], redis_url: str,
                upstream: RecordingUpstream, session: aiohttp.ClientSession,
                config_text: str | None = None, replica_of: Plane | None = None,
                **env: str) -> Plane:
    """A gateway process with ``TOKENGATE_*`` settings from ``env`` (and a config file);
    ``replica_of`` another: the same master key, so both serve the same store."""
    master_key = None if replica_of is None else replica_of.gp.env["TOKENGATE_MASTER_KEY"]
    gp = gateway_factory(store_url=redis_url, upstream=upstream.url, extra_env=env,
                         config_text=config_text, master_key=master_key)
    return Plane(gp, upstream, session, redis_url)
