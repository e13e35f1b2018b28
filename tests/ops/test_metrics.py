"""gateway.metrics: names, labels, pre-initialised series, the hot path, exposition."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import gateway
from gateway import metrics as gm
from gateway.metrics import Metrics, exposition
from tests.ops.support import REPO, run_promtool

FORBIDDEN_LABELS = {"path", "token", "user", "username", "client", "address", "ip", "secret"}


def observed() -> Metrics:
    """A Metrics with one observation of every kind."""
    m = Metrics()
    m.request("allowed", "workspace", "default", 0.004)
    m.request("unauthenticated", "none", "default", 0.0003)
    m.auth_failure("bad_secret")
    m.denied("no-report-clone", "enforce")
    m.denied("no-invites", "dry-run")
    m.upstream(0.003, 200)
    m.upstream(30.0, None)
    m.store_call("authenticate", 0.0004)
    m.store_call("rate_limit", 2.0, failed=True)
    m.revocation_seen(revoked_at=100.0, now=100.2)
    m.trusted_token_minted("default")
    m.trusted_key_failure("default")
    m.in_flight.inc()
    return m


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_exposition_passes_promtool_check_metrics(promtool: str) -> None:
    """`promtool check metrics` finds nothing to lint in the exposition after observations."""
    body, content_type = exposition(observed().registry)
    out = run_promtool(promtool, "check", "metrics", stdin=body)
    assert out.strip() == ""
    assert content_type.startswith("text/plain; version=0.0.4")


def test_names_follow_conventions() -> None:
    """Every metric has the tokengate_ prefix, counters end in _total, histograms in _seconds."""
    families = list(Metrics().registry.collect())
    assert len(families) >= 12
    for family in families:
        assert family.name.startswith("tokengate_"), family.name
        assert family.documentation, family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        if family.type == "counter":
            assert all(
                s.name.endswith(("_total", "_created")) for s in family.samples
            ), family.name


def test_no_high_cardinality_labels() -> None:
    """No metric has a label for a raw path, a token, a username or an address."""
    for family in observed().registry.collect():
        for sample in family.samples:
            assert not set(sample.labels) & FORBIDDEN_LABELS, (family.name, sample.labels)


def test_closed_label_sets_are_preinitialised() -> None:
    """A fresh registry already shows zero for every outcome, token type and 401 reason."""
    m = Metrics()
    for outcome in gm.OUTCOMES:
        for token_type in gm.TOKEN_TYPES:
            labels = {"outcome": outcome, "token_type": token_type, "route_class": "default"}
            assert value(m, "tokengate_requests_total", **labels) == 0.0
        assert value(m, "tokengate_request_duration_seconds_count", outcome=outcome) == 0.0
    for reason in gm.AUTH_FAILURE_REASONS:
        assert value(m, "tokengate_auth_failures_total", reason=reason) == 0.0
    for status_class in gm.UPSTREAM_STATUS_CLASSES:
        assert value(m, "tokengate_upstream_duration_seconds_count", status_class=status_class) == 0
    assert value(m, "tokengate_revocation_delay_seconds_count") == 0.0
    assert value(m, "tokengate_in_flight_requests") == 0.0


def test_declared_config_labels_are_preinitialised() -> None:
    """Route classes, deny rules, store operations and workspaces declared at start show zeros."""
    m = Metrics()
    m.declare_route_classes(["reports"])
    m.declare_deny_rules([("no-invites", "enforce")])
    m.declare_store_operations(["authenticate"])
    m.declare_workspaces(["acme"])
    labels = {"outcome": "rate_limited", "token_type": "member", "route_class": "reports"}
    assert value(m, "tokengate_requests_total", **labels) == 0.0
    assert value(m, "tokengate_denials_total", rule="no-invites", mode="enforce") == 0.0
    assert value(m, "tokengate_store_duration_seconds_count", operation="authenticate") == 0.0
    assert value(m, "tokengate_store_errors_total", operation="authenticate") == 0.0
    assert value(m, "tokengate_trusted_tokens_minted_total", workspace="acme") == 0.0
    assert value(m, "tokengate_trusted_key_failures_total", workspace="acme") == 0.0


def test_helpers_record_what_they_say() -> None:
    """Each hot-path helper moves exactly the series it names."""
    m = observed()
    labels = {"outcome": "allowed", "token_type": "workspace", "route_class": "default"}
    assert value(m, "tokengate_requests_total", **labels) == 1.0
    assert value(m, "tokengate_request_duration_seconds_sum", outcome="allowed") == 0.004
    assert value(m, "tokengate_auth_failures_total", reason="bad_secret") == 1.0
    assert value(m, "tokengate_denials_total", rule="no-invites", mode="dry-run") == 1.0
    assert value(m, "tokengate_upstream_duration_seconds_count", status_class="2xx") == 1.0
    assert value(m, "tokengate_upstream_duration_seconds_count", status_class="error") == 1.0
    assert value(m, "tokengate_store_duration_seconds_count", operation="rate_limit") == 1.0
    assert value(m, "tokengate_store_errors_total", operation="rate_limit") == 1.0
    assert value(m, "tokengate_store_errors_total", operation="authenticate") == 0.0
    assert value(m, "tokengate_revocation_delay_seconds_bucket", le="0.25") == 1.0
    assert value(m, "tokengate_revocation_delay_seconds_bucket", le="0.1") == 0.0
    assert value(m, "tokengate_trusted_tokens_minted_total", workspace="default") == 1.0
    assert value(m, "tokengate_trusted_key_failures_total", workspace="default") == 1.0
    assert value(m, "tokengate_in_flight_requests") == 1.0
    assert value(m, "tokengate_build_info", version=gateway.__version__) == 1.0


def test_revocation_delay_clamps_clock_skew_to_zero() -> None:
    """A revocation stamped later than this replica's clock counts as zero delay, not negative."""
    m = Metrics()
    m.revocation_seen(revoked_at=200.0, now=199.5)
    assert value(m, "tokengate_revocation_delay_seconds_sum") == 0.0


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("request", ("allowd", "member", "default", 0.1)),
        ("request", ("allowed", "admin", "default", 0.1)),
        ("auth_failure", ("wrong_password",)),
        ("denied", ("rule", "audit")),
    ],
)
def test_closed_sets_reject_unknown_values(call: str, args: tuple[Any, ...]) -> None:
    """A label value outside a closed set is a programming error and raises at once."""
    with pytest.raises(ValueError, match="is not one of"):
        getattr(Metrics(), call)(*args)


def test_open_label_sets_are_capped() -> None:
    """Past MAX_LABEL_VALUES distinct values, further ones share the 'other' series."""
    m = Metrics()
    for i in range(gm.MAX_LABEL_VALUES + 50):
        m.trusted_key_failure(f"ws{i}")
    series = [
        s for f in m.registry.collect() if f.name == "tokengate_trusted_key_failures"
        for s in f.samples if s.name.endswith("_total")
    ]
    assert len(series) == gm.MAX_LABEL_VALUES + 1
    assert value(m, "tokengate_trusted_key_failures_total", workspace=gm.OVERFLOW_LABEL) == 50.0
    assert len(m._key_failures) == gm.MAX_LABEL_VALUES  # overflowed values are not cached


def test_hot_path_does_not_call_labels_again() -> None:
    """After the first request of a label combination, recording it skips .labels()."""
    m = Metrics()
    m.request("allowed", "member", "default", 0.01)

    def no_labels(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(".labels() called on the hot path")

    for metric in (m.requests, m.request_duration, m.auth_failures, m.upstream_duration):
        metric.labels = no_labels  # type: ignore[method-assign]
    m.request("allowed", "member", "default", 0.01)
    m.auth_failure("expired")
    m.upstream(0.01, 503)
    labels = {"outcome": "allowed", "token_type": "member", "route_class": "default"}
    assert value(m, "tokengate_requests_total", **labels) == 2.0


def test_registries_are_independent() -> None:
    """Two Metrics() on their own registries neither collide nor share counts."""
    a, b = Metrics(), Metrics(CollectorRegistry())
    a.auth_failure("unknown")
    assert value(a, "tokengate_auth_failures_total", reason="unknown") == 1.0
    assert value(b, "tokengate_auth_failures_total", reason="unknown") == 0.0


WORKER = textwrap.dedent(
    """
    import os
    from gateway.metrics import Metrics
    m = Metrics()
    m.request("allowed", "workspace", "default", 0.01)
    m.auth_failure("revoked")
    m.in_flight.inc()
    print(os.getpid())
    """
)
SCRAPE = textwrap.dedent(
    """
    import sys
    from gateway.metrics import Metrics, exposition, worker_exited
    if len(sys.argv) > 1:
        worker_exited(int(sys.argv[1]))
    body, _ = exposition(Metrics().registry)
    sys.stdout.write(body.decode())
    """
)


def _run(code: str, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _sample(body: str, prefix: str) -> float:
    (line,) = [ln for ln in body.splitlines() if ln.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


def test_multiprocess_mode_aggregates_workers(tmp_path: Path, promtool: str) -> None:
    """With PROMETHEUS_MULTIPROC_DIR set, a scrape sums every worker; a dead worker's in-flight goes."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    pids = [_run(WORKER, env).strip() for _ in range(2)]
    body = _run(SCRAPE, env)
    allowed = 'tokengate_requests_total{outcome="allowed",route_class="default",token_type="workspace"}'
    assert _sample(body, allowed) == 2.0
    assert _sample(body, 'tokengate_auth_failures_total{reason="revoked"}') == 2.0
    assert _sample(body, "tokengate_in_flight_requests ") == 2.0
    assert _sample(body, f'tokengate_build_info{{version="{gateway.__version__}"}}') == 1.0
    run_promtool(promtool, "check", "metrics", stdin=body.encode())

    after = _run(SCRAPE, env, pids[0])
    assert _sample(after, "tokengate_in_flight_requests ") == 1.0
    assert _sample(after, allowed) == 2.0  # counters keep a dead worker's counts


FORKED = textwrap.dedent(
    """
    import os, sys, tempfile
    from gateway.metrics import Metrics, exposition, worker_exited  # imported first, as the CLI does
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]           # then set, as run_workers does
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            m = Metrics()
            m.auth_failure("expired")
            m.in_flight.inc()
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    worker_exited(pids[0])
    sys.stdout.write(exposition(Metrics().registry)[0].decode())
    """
)


def test_multiprocess_mode_works_when_set_after_import(tmp_path: Path) -> None:
    """Workers forked after the directory is set (metrics already imported) are still aggregated."""
    body = _run(FORKED, dict(os.environ, PYTHONPATH=str(REPO)), str(tmp_path))
    assert _sample(body, 'tokengate_auth_failures_total{reason="expired"}') == 3.0
    assert _sample(body, "tokengate_in_flight_requests ") == 2.0
