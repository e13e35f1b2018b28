"""`tokengate serve` in a Kubernetes pod's environment: service links beside the settings."""

from __future__ import annotations

import json
import urllib.request

from tests.admin.support import cli_env, run_cli
from tests.test_servicelinks import kubelet_env

# What a pod with service links on gets for the reference Services (and the API server).
POD_ENV = {
    **kubelet_env("tokengate-redis", "10.96.12.7", [{"name": "redis", "port": 6379}]),
    **kubelet_env("analytics-api", "10.96.40.2", [{"name": "http", "port": 80}]),
    **kubelet_env("kubernetes", "10.96.0.1", [{"name": "https", "port": 443}]),
}


def test_serve_becomes_ready_with_kubernetes_service_links_set(  # type: ignore[no-untyped-def]
        gateway_factory, redis_url: str) -> None:
    """With TOKENGATE_REDIS_SERVICE_HOST, TOKENGATE_REDIS_PORT_6379_TCP... in its
    environment, `serve` starts, becomes ready, and names the skipped variables in
    one debug line."""
    gp = gateway_factory(store_url=redis_url, upstream="http://127.0.0.1:9",
                         extra_env={**POD_ENV, "TOKENGATE_LOG_LEVEL": "debug"})
    with urllib.request.urlopen(gp.admin + "/readyz", timeout=10) as resp:
        assert resp.status == 200
    records = [json.loads(line) for line in gp.logs().splitlines() if line.startswith("{")]
    skipped = [r for r in records if "service-link" in r.get("message", "")]
    assert len(skipped) == 1 and skipped[0]["level"] == "debug"
    assert skipped[0]["variables"] == sorted(n for n in POD_ENV if n.startswith("TOKENGATE_"))


def test_serve_still_refuses_a_misspelt_setting_beside_service_links(redis_url: str) -> None:
    """A misspelt TOKENGATE_ setting among service links stops `serve` with exit 2,
    one line naming it."""
    out = run_cli("serve", "--store", redis_url, "--listen", "127.0.0.1:0",
                  "--admin-listen", "127.0.0.1:0", timeout=20,
                  env=cli_env(None, **POD_ENV, TOKENGATE_STORE_URLL="redis://10.96.12.7:6379/0"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == ["tokengate: TOKENGATE_STORE_URLL: unknown setting store.urll"]
