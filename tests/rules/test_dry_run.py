"""Dry-run rules: the request passes, the match is counted in a metric and logged."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import InProcess, RecordingUpstream, basic
from tests.rules.support import MakeGateway, problem, raw_request

DRY = {"name": "audit-exports", "methods": ["GET"], "path": "/api/{workspace}/exports/**",
       "token_types": ["workspace"], "mode": "dry-run", "message": "exports will be denied soon"}
ENFORCED = {"name": "no-export-delete", "methods": ["DELETE"], "path": "/api/{workspace}/exports/**",
            "token_types": ["workspace"], "message": "no deleting exports"}


async def denials(g: InProcess) -> dict[tuple[str, str], float]:
    """``tokengate_denials_total`` by (rule, mode), read from the admin listener's /metrics."""
    async with aiohttp.ClientSession() as s, s.get(g.admin + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {
        (sample.labels["rule"], sample.labels["mode"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "tokengate_denials"
        for sample in family.samples
        if sample.name == "tokengate_denials_total"
    }


async def test_dry_run_rule_passes_counts_and_logs(
    make_gateway: MakeGateway, upstream: RecordingUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """A request matching a dry-run rule is forwarded, counted with mode="dry-run" and logged with the rule."""
    caplog.set_level(logging.INFO, logger="tokengate.proxy")
    g: InProcess = await make_gateway({"deny": [DRY, ENFORCED]})
    assert (await denials(g)).get(("audit-exports", "dry-run")) == 0
    auth = {"Authorization": basic(g.token, g.secret)}
    for path in ("/api/default/exports/1", "/api/default/EXPORTS/2/"):
        response = await raw_request(g.proxy, "GET", path, headers=auth)
        assert response.status == 200
    assert [s.raw_path for s in upstream.seen] == ["/api/default/exports/1", "/api/default/EXPORTS/2/"]
    counted = await denials(g)
    assert counted[("audit-exports", "dry-run")] == 2
    assert counted[("no-export-delete", "enforce")] == 0
    logged = [r for r in caplog.records if getattr(r, "rule", None) == "audit-exports"]
    assert [r.__dict__["path"] for r in logged] == ["/api/default/exports/1", "/api/default/EXPORTS/2/"]
    assert all("dry-run" in r.getMessage() for r in logged)


async def test_dry_run_rule_does_not_count_requests_it_does_not_match(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """Other methods, paths and token types leave the dry-run counter alone."""
    g: InProcess = await make_gateway({"deny": [DRY]})
    auth = {"Authorization": basic(g.token, g.secret)}
    for method, path in (("POST", "/api/default/exports/1"), ("GET", "/api/default/reports/1")):
        assert (await raw_request(g.proxy, method, path, headers=auth)).status == 200
    assert (await denials(g))[("audit-exports", "dry-run")] == 0


async def test_enforced_rule_counts_and_dry_run_alongside_it(
    make_gateway: MakeGateway, upstream: RecordingUpstream
) -> None:
    """When an enforcing and a dry-run rule both match, the request is denied and both are counted."""
    dry_delete = {**ENFORCED, "name": "watch-delete", "mode": "dry-run"}
    g: InProcess = await make_gateway({"deny": [dry_delete, ENFORCED]})
    response = await raw_request(g.proxy, "DELETE", "/api/default/exports/1",
                                 headers={"Authorization": basic(g.token, g.secret)})
    assert response.status == 403 and problem(response)["rule"] == "no-export-delete"
    counted = await denials(g)
    assert counted[("no-export-delete", "enforce")] == 1
    assert counted[("watch-delete", "dry-run")] == 1
    assert upstream.seen == []
