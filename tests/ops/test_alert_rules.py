"""The alerting rules fire as intended: promtool's rule unit tests on synthetic series."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.ops.support import ALERTS, run_promtool

EXPIRING = 'tokengate_tokens_expiring{job="tokengate",instance="%s",token_type="%s",within="%s"}'


def test_workspace_tokens_expiring_within_a_week_raise_one_alert(
        promtool: str, tmp_path: Path) -> None:
    """Two replicas reporting the same count of workspace tokens due within 7 days raise one
    TokengateWorkspaceTokensExpiring (after 15 minutes) with that count; member tokens and
    tokens due later raise nothing; the alert clears when the count drops to 0."""
    series = [
        {"series": EXPIRING % ("a:9090", "workspace", "7d"), "values": "2x20 0x20"},
        {"series": EXPIRING % ("b:9090", "workspace", "7d"), "values": "2x20 0x20"},
        {"series": EXPIRING % ("a:9090", "workspace", "30d"), "values": "5x40"},
        {"series": EXPIRING % ("a:9090", "member", "7d"), "values": "3x40"},
    ]
    alert = "TokengateWorkspaceTokensExpiring"
    tests = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": alert, "exp_alerts": []},  # still pending
                {"eval_time": "16m", "alertname": alert, "exp_alerts": [{
                    "exp_labels": {"job": "tokengate", "severity": "warning"},
                    "exp_annotations": {
                        "summary": "tokengate tokengate: 2 workspace token(s) expire within 7 days",
                        "description": (
                            "List them with GET /admin/api/tokens?type=workspace "
                            "(expires_in_days) or `tokengate token list --type workspace`; "
                            "create a replacement (or roll it) before the integration using "
                            "it breaks."),
                    },
                }]},
                {"eval_time": "35m", "alertname": alert, "exp_alerts": []},
            ],
        }],
    }
    path = tmp_path / "alert-tests.yml"
    path.write_text(yaml.safe_dump(tests))
    out = run_promtool(promtool, "test", "rules", str(path))
    assert "SUCCESS" in out
