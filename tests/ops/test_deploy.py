"""deploy/: every YAML parses, and Kubernetes and compose agree with the gateway's config."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.config import load_settings, parse_listen
from tests.conftest import free_port
from tests.ops.support import DEPLOY, REPO, yaml_documents

K8S = DEPLOY / "kubernetes"
REQUIRED_ENV = {
    "TOKENGATE_MASTER_KEY",
    "TOKENGATE_ADMIN_KEY",
    "TOKENGATE_STORE_URL",
    "TOKENGATE_UPSTREAM_URL",
    "TOKENGATE_PROXY_LISTEN",
    "TOKENGATE_ADMIN_LISTEN",
}
SECRET_ENV = {"TOKENGATE_MASTER_KEY", "TOKENGATE_ADMIN_KEY"}
PLACEHOLDER_ADMIN_KEY = "a8ec6741aca122b6f835e84bddb0f0e216ec6af5500d9c97"  # strong, as serve insists


def settings_from(env: dict[str, str]) -> Any:
    """Validate an environment the way `tokengate serve` would (secrets replaced by placeholders)."""
    env = dict(env)
    env.pop("TOKENGATE_MASTER_KEY", None)
    if "TOKENGATE_ADMIN_KEY" in env:
        env["TOKENGATE_ADMIN_KEY"] = PLACEHOLDER_ADMIN_KEY
    return load_settings(environ=env)


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml_documents(path)]


def find(kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def containers() -> dict[str, dict[str, Any]]:
    spec = find("Deployment", "analytics-api")["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def port_number(container: dict[str, Any], port: int | str) -> int:
    """Resolve a named container port."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def sidecar_env() -> dict[str, str]:
    return {e["name"]: e.get("value", "<from secret>") for e in containers()["tokengate"]["env"]}


@pytest.mark.parametrize(
    "path", sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml")), ids=str
)
def test_yaml_parses(path: Path) -> None:
    """Every YAML file under deploy/ parses and is not empty."""
    assert yaml_documents(path)


def test_sidecar_env_names_are_settings_the_gateway_knows() -> None:
    """The sidecar sets the required TOKENGATE_* variables, and the config loader accepts them all."""
    env = sidecar_env()
    assert REQUIRED_ENV <= set(env)
    settings = settings_from(env)
    assert settings.admin.key == PLACEHOLDER_ADMIN_KEY


def test_sidecar_keys_come_from_the_secret() -> None:
    """The master and admin keys are read from the tokengate-keys Secret, never written inline."""
    secret = find("Secret", "tokengate-keys")
    for var in containers()["tokengate"]["env"]:
        if var["name"] in SECRET_ENV:
            assert "value" not in var
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "tokengate-keys"
            assert ref["key"] in secret["stringData"]
    assert set(secret["stringData"]) == SECRET_ENV


def test_sidecar_ports_match_its_listeners() -> None:
    """Container ports 8080 and 9090 are the proxy and admin listeners the env configures."""
    sidecar = containers()["tokengate"]
    settings = settings_from(sidecar_env())
    assert parse_listen(settings.proxy.listen) == ("0.0.0.0", 8080)
    # The kubelet and Prometheus come in by pod IP, so admin must not bind loopback.
    assert parse_listen(settings.admin.listen) == ("0.0.0.0", 9090)
    assert port_number(sidecar, "http") == 8080
    assert port_number(sidecar, "admin") == 9090


def test_probes_hit_health_endpoints_on_the_admin_port() -> None:
    """Liveness probes /healthz and readiness /readyz, both on the admin port 9090."""
    sidecar = containers()["tokengate"]
    live, ready = sidecar["livenessProbe"]["httpGet"], sidecar["readinessProbe"]["httpGet"]
    assert live["path"] == "/healthz" and port_number(sidecar, live["port"]) == 9090
    assert ready["path"] == "/readyz" and port_number(sidecar, ready["port"]) == 9090


def test_upstream_is_the_app_container_on_loopback() -> None:
    """TOKENGATE_UPSTREAM_URL is http://127.0.0.1:<the app container's port>."""
    env = sidecar_env()
    app_port = {e["name"]: e["value"] for e in containers()["app"]["env"]}["PORT"]
    assert env["TOKENGATE_UPSTREAM_URL"] == f"http://127.0.0.1:{app_port}"
    assert settings_from(env).upstream.url == f"http://127.0.0.1:{app_port}"


def test_store_url_points_at_the_redis_service() -> None:
    """TOKENGATE_STORE_URL names the Redis Service and its port, and that Service selects Redis."""
    url = urlsplit(sidecar_env()["TOKENGATE_STORE_URL"])
    assert url.scheme == "redis"
    service = find("Service", url.hostname or "")
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    redis = find("Deployment", "tokengate-redis")
    assert service["spec"]["selector"].items() <= redis["spec"]["template"]["metadata"]["labels"].items()


def test_service_exposes_the_gateway_port_only() -> None:
    """The app's Service targets the gateway's 8080 and never the admin port 9090."""
    service = find("Service", "analytics-api")
    sidecar = containers()["tokengate"]
    pod_labels = find("Deployment", "analytics-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    targets = [port_number(sidecar, p.get("targetPort", p["port"])) for p in service["spec"]["ports"]]
    assert targets == [8080]
    assert all(p["port"] != 9090 for p in service["spec"]["ports"])


def test_admin_port_is_annotated_for_scraping() -> None:
    """The pod's prometheus.io annotations point the scrape job at port 9090, /metrics."""
    annotations = find("Deployment", "analytics-api")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9090"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_termination_grace_outlasts_the_drain() -> None:
    """terminationGracePeriodSeconds exceeds preStop plus the gateway's drain grace."""
    pod = find("Deployment", "analytics-api")["spec"]["template"]["spec"]
    sidecar = containers()["tokengate"]
    grace = settings_from(sidecar_env()).lifecycle.grace_seconds
    pre_stop = sidecar["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > grace + float(pre_stop[1])


def test_sidecar_runs_unprivileged() -> None:
    """The sidecar runs as non-root, without privilege escalation or capabilities."""
    ctx = containers()["tokengate"]["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]


def test_kustomization_lists_the_manifests_but_not_the_example_secret() -> None:
    """kustomization.yaml applies every manifest that exists, and leaves the example Secret out."""
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    resources = kustomization["resources"]
    assert all((K8S / r).is_file() for r in resources)
    assert "secret.example.yaml" not in resources
    assert {"app.yaml", "redis.yaml"} <= set(resources)


def compose() -> dict[str, Any]:
    (doc,) = yaml_documents(DEPLOY / "compose.yaml")
    return doc  # type: ignore[no-any-return]


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment with ${VAR:?message} references replaced by a placeholder."""
    return {
        k: ("<from environment>" if str(v).startswith("${") else str(v))
        for k, v in service["environment"].items()
    }


def test_compose_gateway_is_built_from_the_dockerfile() -> None:
    """compose builds tokengate from the repository's Dockerfile and runs `serve`."""
    gate = compose()["services"]["tokengate"]
    context = (DEPLOY / gate["build"]["context"]).resolve()
    assert context == REPO
    assert (context / gate["build"]["dockerfile"]).is_file()
    assert gate["command"] == ["serve"]


def test_compose_env_is_valid_gateway_config() -> None:
    """compose's TOKENGATE_* variables are accepted by the config loader and name the other services."""
    services = compose()["services"]
    env = compose_env(services["tokengate"])
    assert REQUIRED_ENV <= set(env)
    settings = settings_from(env)
    store, upstream = urlsplit(settings.store.url), urlsplit(settings.upstream.url)
    assert store.hostname == "redis" and store.port == 6379
    assert upstream.hostname == "upstream"
    assert str(upstream.port) == services["upstream"]["environment"]["PORT"]
    assert parse_listen(settings.proxy.listen)[1] == 8080
    assert parse_listen(settings.admin.listen) == ("0.0.0.0", 9090)
    for secret in SECRET_ENV:
        assert services["tokengate"]["environment"][secret].startswith("${" + secret + ":?")


def test_compose_admin_answers_the_host_prometheus_scrapes() -> None:
    """The Host that compose's Prometheus sends (its scrape target) passes the admin
    listener's Host allow-list, so the monitoring profile is not answered 421."""
    from gateway.policy.hosts import HostAllowList

    settings = settings_from(compose_env(compose()["services"]["tokengate"]))
    hosts = HostAllowList.build(parse_listen(settings.admin.listen)[0],
                                settings.admin.allowed_hosts)
    scrape = yaml_documents(DEPLOY / "prometheus" / "prometheus.yml")[0]
    targets = [t for job in scrape["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]]
    assert targets and all(hosts.allows(t) for t in targets)
    assert not hosts.allows("rebound.example:9090")


def test_compose_publishes_admin_on_loopback_only() -> None:
    """The proxy is published on 8080; the admin port only on the host's 127.0.0.1."""
    ports = compose()["services"]["tokengate"]["ports"]
    assert "8080:8080" in ports
    assert "127.0.0.1:9090:9090" in ports
    assert not any(p.endswith(":9090") and not p.startswith("127.0.0.1:") for p in ports)


def test_compose_mounts_existing_files() -> None:
    """Every bind mount in compose.yaml names a file or directory that exists."""
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


def test_demo_upstream_echoes_the_request() -> None:
    """deploy/demo-upstream/echo.py answers with the method, path and headers it received."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(DEPLOY / "demo-upstream" / "echo.py")],
        env={"HOST": "127.0.0.1", "PORT": str(port)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/x?y=1", data=b"hello", method="POST",
                    headers={"X-Tokengate-User": "alice"},
                )
                with urllib.request.urlopen(req, timeout=2) as resp:
                    body = json.load(resp)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert body["method"] == "POST" and body["path"] == "/api/x?y=1"
        assert body["headers"]["X-Tokengate-User"] == "alice"
        assert body["body_bytes"] == 5
    finally:
        proc.terminate()
        proc.wait(5)
