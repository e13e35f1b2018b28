"""Kubernetes service-link variables: recognised by name and value, ignored by the loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import ConfigError, env_overrides, load_settings, service_link_variables
from gateway.servicelinks import is_service_link

K8S = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"


def kubelet_env(name: str, cluster_ip: str, ports: list[dict[str, Any]]) -> dict[str, str]:
    """The variables the kubelet writes for one Service (pkg/kubelet/envvars, with brackets)."""
    prefix = name.upper().replace("-", "_")
    env = {f"{prefix}_SERVICE_HOST": cluster_ip,
           f"{prefix}_SERVICE_PORT": str(ports[0]["port"])}
    host = f"[{cluster_ip}]" if ":" in cluster_ip else cluster_ip
    for i, p in enumerate(ports):
        proto = p.get("protocol", "TCP")
        if p.get("name"):
            env[f"{prefix}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        url = f"{proto.lower()}://{host}:{p['port']}"
        if i == 0:
            env[f"{prefix}_PORT"] = url
        base = f"{prefix}_PORT_{p['port']}_{proto}"
        env.update({base: url, base + "_PROTO": proto.lower(), base + "_PORT": str(p["port"]),
                    base + "_ADDR": cluster_ip})
    return env


REDIS_LINKS = kubelet_env("tokengate-redis", "10.96.12.7", [{"name": "redis", "port": 6379}])


@pytest.mark.parametrize(("name", "value"), [
    *REDIS_LINKS.items(),
    # a Service named after the gateway itself, and one with several ports and protocols
    *kubelet_env("tokengate", "10.0.0.1", [{"port": 80, "name": "http"}]).items(),
    *kubelet_env("tokengate-admin-v2", "fd00:10:96::5", [
        {"port": 9090, "name": "admin-port"}, {"port": 53, "protocol": "UDP", "name": "dns"},
        {"port": 7777, "protocol": "SCTP", "name": "s"}]).items(),
    # older kubelets wrote a bare IPv6 address in the URL
    ("TOKENGATE_DB_PORT", "tcp://fd00::1:5432"),
])
def test_what_kubernetes_writes_is_a_service_link(name: str, value: str) -> None:
    """Every variable the kubelet writes for a Service is recognised."""
    assert is_service_link(name, value)


@pytest.mark.parametrize(("name", "value"), [
    ("TOKENGATE_STORE_URLL", "redis://10.0.0.1:6379/0"),  # misspelt settings
    ("TOKENGATE_PROXY_LISTN", "0.0.0.0:8080"),
    ("TOKENGATE_REDIS_PORT", "6379"),                      # right name, wrong value shapes
    ("TOKENGATE_REDIS_PORT", "redis://10.0.0.1:6379"),
    ("TOKENGATE_REDIS_PORT", "tcp://redis:6379"),
    ("TOKENGATE_REDIS_PORT", "tcp://10.0.0.1"),
    ("TOKENGATE_REDIS_SERVICE_HOST", "tokengate-redis"),
    ("TOKENGATE_REDIS_SERVICE_PORT", "redis"),
    ("TOKENGATE_REDIS_SERVICE_PORT", "0"),
    ("TOKENGATE_REDIS_SERVICE_PORT_REDIS", "70000"),
    ("TOKENGATE_REDIS_PORT_6379_TCP", "tcp://10.0.0.1:6380"),   # port differs from the name
    ("TOKENGATE_REDIS_PORT_6379_TCP", "udp://10.0.0.1:6379"),   # protocol differs
    ("TOKENGATE_REDIS_PORT_6379_TCP_PROTO", "udp"),
    ("TOKENGATE_REDIS_PORT_6379_TCP_PORT", "6380"),
    ("TOKENGATE_REDIS_PORT_6379_TCP_ADDR", "tokengate-redis"),
    ("TOKENGATE_REDIS_PORT_6379_HTTP", "tcp://10.0.0.1:6379"),  # no such protocol
    ("TOKENGATE_REDIS_SERVICE_HOSTS", "10.0.0.1"),
    ("tokengate_redis_service_host", "10.0.0.1"),
])
def test_other_variables_are_not_service_links(name: str, value: str) -> None:
    """A name or value Kubernetes would not write is not taken for a service link."""
    assert not is_service_link(name, value)


def test_the_loader_ignores_service_links_and_names_them() -> None:
    """Service-link variables beside real settings are skipped (and listed), the
    settings still apply."""
    env = {**REDIS_LINKS, "TOKENGATE_STORE_URL": "redis://tokengate-redis:6379/0",
           "TOKENGATE_LOG_LEVEL": "debug", "KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    assert env_overrides(env) == {"store": {"url": "redis://tokengate-redis:6379/0"},
                                  "log": {"level": "debug"}}
    assert service_link_variables(env) == sorted(REDIS_LINKS)
    assert load_settings(environ=env).store.url == "redis://tokengate-redis:6379/0"


@pytest.mark.parametrize(("name", "value"), [
    ("TOKENGATE_STORE_URLL", "redis://10.0.0.1:6379/0"),
    ("TOKENGATE_PROXY_LISTN", "0.0.0.0:8080"),
    ("TOKENGATE_REDIS_PORT", "6379"),
])
def test_a_misspelt_setting_beside_service_links_is_still_refused(name: str, value: str) -> None:
    """Ignoring service links does not let a misspelt setting through: it names the variable."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ={**REDIS_LINKS, name: value})
    assert str(info.value).startswith(f"{name}: unknown setting")
    assert service_link_variables({**REDIS_LINKS, name: value}) == sorted(set(REDIS_LINKS) - {name})


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_the_reference_pods_turn_service_links_off() -> None:
    """Every Deployment in deploy/kubernetes sets enableServiceLinks: false."""
    deployments = [d for d in _manifests() if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"analytics-api", "tokengate-redis"}
    for d in deployments:
        assert d["spec"]["template"]["spec"]["enableServiceLinks"] is False, d["metadata"]["name"]


def test_the_reference_services_links_would_not_stop_the_gateway() -> None:
    """Even where service links stay on, what the reference Services would inject
    next to the sidecar's own settings loads."""
    env: dict[str, str] = {}
    for i, svc in enumerate(d for d in _manifests() if d["kind"] == "Service"):
        env.update(kubelet_env(svc["metadata"]["name"], f"10.96.0.{10 + i}", svc["spec"]["ports"]))
    assert any(name.startswith("TOKENGATE_") for name in env)
    app = next(d for d in _manifests() if d["metadata"]["name"] == "analytics-api"
               and d["kind"] == "Deployment")
    sidecar = next(c for c in app["spec"]["template"]["spec"]["containers"]
                   if c["name"] == "tokengate")
    env.update({e["name"]: e["value"] for e in sidecar["env"] if "value" in e})
    settings = load_settings(environ=env)
    assert settings.store.url == "redis://tokengate-redis:6379/0"
    assert service_link_variables(env) == sorted(
        n for n in env if n.startswith("TOKENGATE_REDIS_"))
