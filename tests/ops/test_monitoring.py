"""The dashboard, the alerting rules and the Prometheus configuration agree with the code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gateway.metrics import Metrics
from tests.ops.support import (
    ALERTS,
    DEPLOY,
    REPO,
    alert_expressions,
    dashboard,
    dashboard_expressions,
    dashboard_variable_queries,
    grafana_to_promql,
    metric_names,
    run_promtool,
    series_exists,
    yaml_documents,
)


def test_alert_rules_pass_promtool(promtool: str) -> None:
    """`promtool check rules` accepts deploy/prometheus/alerts.yml."""
    out = run_promtool(promtool, "check", "rules", str(ALERTS))
    assert "SUCCESS" in out


def test_every_alert_has_severity_and_summary() -> None:
    """Each alert carries a severity label and a summary annotation for the pager."""
    (doc,) = yaml_documents(ALERTS)
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} >= {
        "TokengateHighErrorRatio",
        "TokengateStoreUnavailable",
        "TokengateUpstreamErrors",
        "TokengateAuthFailureSpike",
        "TokengateHighLatency",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_prometheus_config_passes_promtool(promtool: str) -> None:
    """`promtool check config` accepts deploy/prometheus/prometheus.yml and the rules it loads."""
    out = run_promtool(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert "1 rule files found" in out


def test_prometheus_config_scrapes_the_admin_port() -> None:
    """The compose scrape job targets tokengate's admin port 9090 at /metrics."""
    (doc,) = yaml_documents(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = doc["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets and all(t.endswith(":9090") for t in targets)


def test_kubernetes_scrape_config_passes_promtool(promtool: str, tmp_path: Path) -> None:
    """The in-cluster scrape config is valid Prometheus configuration.

    Debian's promtool is built without Kubernetes discovery, so the pod
    discovery block is checked by hand and swapped for a static target; the
    relabelling rules and the rule file still go through promtool.
    """
    (configmap,) = yaml_documents(DEPLOY / "kubernetes" / "prometheus-scrape.yaml")
    config = yaml.safe_load(configmap["data"]["prometheus.yml"])
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["static_configs"] = [{"targets": ["127.0.0.1:9090"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    run_promtool(promtool, "check", "config", str(tmp_path / "prometheus.yml"))


def test_alert_metrics_exist_in_the_registry() -> None:
    """Every tokengate_* series an alert reads is exported by a fresh Metrics() registry."""
    registry = Metrics().registry
    names = set().union(*(metric_names(e) for e in alert_expressions()))
    assert names, "the alerts read no tokengate metric"
    missing = sorted(n for n in names if not series_exists(n, registry))
    assert not missing, f"alerts use metrics the gateway does not export: {missing}"


def test_dashboard_metrics_exist_in_the_registry() -> None:
    """Every tokengate_* series a dashboard panel or variable reads is exported by Metrics()."""
    registry = Metrics().registry
    exprs = dashboard_expressions() + dashboard_variable_queries()
    names = set().union(*(metric_names(e) for e in exprs))
    assert names, "the dashboard reads no tokengate metric"
    missing = sorted(n for n in names if not series_exists(n, registry))
    assert not missing, f"the dashboard uses metrics the gateway does not export: {missing}"


def test_every_dashboard_panel_reads_a_tokengate_metric() -> None:
    """No panel target is empty or reads something other than tokengate's metrics."""
    exprs = dashboard_expressions()
    assert len(exprs) >= 15
    for expr in exprs:
        assert metric_names(expr), expr


def test_dashboard_promql_parses(promtool: str, tmp_path: Path) -> None:
    """Every dashboard expression is valid PromQL (checked as recording rules by promtool)."""
    rules = [
        {"record": f"tokengate:dashboard_panel_{i}", "expr": grafana_to_promql(expr)}
        for i, expr in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", str(path))


@pytest.mark.parametrize(
    "title",
    [
        "Requests by outcome",
        "Request latency (whole request)",
        "401s by reason",
        "429s by route class",
        "403s by deny rule",
        "Upstream errors",
        "Store latency by operation",
        "Store errors",
        "Revocation delay",
    ],
)
def test_dashboard_has_the_panels_ops_asked_for(title: str) -> None:
    """The dashboard has a panel for each view named in the operations brief."""
    titles = {p["title"] for p in dashboard()["panels"]}
    assert title in titles


def test_dashboard_latency_panel_shows_p50_p95_p99() -> None:
    """The latency panel plots the 0.5, 0.95 and 0.99 quantiles of the request histogram."""
    (panel,) = [p for p in dashboard()["panels"] if p["title"] == "Request latency (whole request)"]
    exprs = " ".join(t["expr"] for t in panel["targets"])
    for q in ("0.5,", "0.95,", "0.99,"):
        assert f"histogram_quantile({q} sum by (le) (rate(tokengate_request_duration" in exprs


def test_dashboard_panels_use_the_datasource_variable() -> None:
    """Panels query the dashboard's data-source variable, so the JSON imports into any Grafana."""
    doc = dashboard()
    assert doc["uid"] == "tokengate"
    assert any(v["type"] == "datasource" for v in doc["templating"]["list"])
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_readme_catalogue_lists_every_metric() -> None:
    """The README's metric catalogue names exactly the metrics the gateway exports."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("<!-- operations:begin -->")[1].split("<!-- operations:end -->")[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| `tokengate_")]
    documented = {ln.split("`")[1] for ln in rows}
    exported = set()
    for family in Metrics().registry.collect():
        exported.add(family.name + "_total" if family.type == "counter" else family.name)
    assert documented == exported
