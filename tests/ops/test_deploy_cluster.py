"""deploy/kubernetes/redis-cluster.yaml: a Redis Cluster the gateway's store URL names right."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gateway.config import load_settings
from gateway.store.cluster import parse_cluster_url
from tests.ops.support import DEPLOY, REPO, yaml_documents

MANIFEST = DEPLOY / "kubernetes" / "redis-cluster.yaml"


def objects() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml_documents(MANIFEST)}


def test_the_store_url_is_valid_and_names_the_statefulset_pods() -> None:
    """The ConfigMap's TOKENGATE_STORE_URL is a redis+cluster:// URL the config accepts,
    listing pods of the StatefulSet by their names under the headless Service."""
    docs = objects()
    url = docs["ConfigMap"]["data"]["TOKENGATE_STORE_URL"]
    settings = load_settings(environ={"TOKENGATE_STORE_URL": url})
    assert urlsplit(settings.store.url).scheme == "redis+cluster"
    sts, service = docs["StatefulSet"], docs["Service"]
    name, replicas = sts["metadata"]["name"], sts["spec"]["replicas"]
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    pods = {f"{name}-{i}.{service['metadata']['name']}" for i in range(replicas)}
    for host, port in parse_cluster_url(url).nodes:
        assert host in pods and port == ports["redis"]


def test_every_node_runs_in_cluster_mode_with_its_bus_port() -> None:
    """The nodes start with --cluster-enabled yes, persist their nodes.conf, and expose the bus."""
    container = objects()["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--cluster-enabled") + 1] == "yes"
    assert args[args.index("--cluster-config-file") + 1].startswith("/data/")
    assert {p["containerPort"] for p in container["ports"]} == {6379, 16379}
    assert "--cluster-replicas 1" in objects()["Job"]["spec"]["template"]["spec"][
        "containers"][0]["command"][-1]


def test_it_is_an_alternative_to_the_single_redis() -> None:
    """kustomize applies the single Redis; the cluster is applied instead of it, and the
    single Redis's manifest and the README point to it."""
    kustomization = yaml_documents(DEPLOY / "kubernetes" / "kustomization.yaml")[0]
    assert "redis-cluster.yaml" not in kustomization["resources"]
    assert "redis-cluster.yaml" in (DEPLOY / "kubernetes" / "redis.yaml").read_text()
    assert "redis-cluster.yaml" in (REPO / "README.md").read_text()
