"""Helpers for the operations tests: paths, promtool, YAML, PromQL metric names."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "tokengate.json"

_METRIC_NAME = re.compile(r"\btokengate_[A-Za-z0-9_]+")
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def run_promtool(promtool: str, *args: str, stdin: bytes | None = None) -> str:
    """Run promtool; fail with its output unless it exits 0."""
    proc = subprocess.run(
        [promtool, *args], input=stdin, capture_output=True, timeout=60, check=False
    )
    out = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{out}"
    return out


def yaml_documents(path: Path) -> list[Any]:
    """Every non-empty document of a YAML file."""
    with path.open() as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def alert_expressions() -> list[str]:
    """The PromQL expression of every rule in alerts.yml."""
    (doc,) = yaml_documents(ALERTS)
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard as parsed JSON."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_expressions() -> list[str]:
    """The PromQL of every panel target in the dashboard."""
    return [value for key, value in _walk(dashboard()["panels"]) if key == "expr"]


def dashboard_variable_queries() -> list[str]:
    """The queries of the dashboard's template variables (label_values(...))."""
    out = []
    for var in dashboard()["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            out.append(query["query"])
        if var.get("definition"):
            out.append(var["definition"])
    return out


def metric_names(expr: str) -> set[str]:
    """The tokengate_* series names an expression reads."""
    return set(_METRIC_NAME.findall(expr))


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, so promtool can parse it."""
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace('"$job"', '".*"')
        .replace('"$instance"', '".*"')
    )


def series_exists(name: str, registry: CollectorRegistry) -> bool:
    """Whether ``name`` (with any _total/_bucket/_count/_sum suffix) is exported by ``registry``."""
    types = {family.name: family.type for family in registry.collect()}
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return types.get(name.removesuffix(suffix)) in ("histogram", "summary")
    if name.endswith("_total"):
        return types.get(name.removesuffix("_total")) == "counter"
    return types.get(name) in ("gauge", "info", "unknown")
