"""A bad rule stops ``tokengate serve`` and ``tokengate config check`` with exit 2, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.keys import generate_master_key

GOOD = """
[[deny]]
name = "fine-rule"
methods = ["POST"]
path = "/api/{workspace}/fine"
"""

BAD = {
    "invalid pattern (** not last)": ("""
[[deny]]
name = "bad-tail"
methods = ["POST"]
path = "/api/**/clone"
""", "bad-tail"),
    "invalid pattern (empty parameter)": ("""
[[deny]]
name = "empty-param"
path = "/api/{}/invites"
""", "empty-param"),
    "unknown token type": ("""
[[deny]]
name = "typo-type"
path = "/api/{workspace}/invites"
token_types = ["workspace", "robot"]
""", "typo-type"),
    "duplicate rule name": (GOOD + GOOD.replace("/fine", "/other"), "fine-rule"),
    "a name a token's restrictions use": (GOOD.replace("fine-rule", "scope"), "scope"),
    "lower-case method": ("""
[[deny]]
name = "lower-method"
methods = ["post"]
path = "/api/{workspace}/invites"
""", "lower-method"),
    "unknown mode": ("""
[[deny]]
name = "bad-mode"
path = "/x"
mode = "log-only"
""", "bad-mode"),
    "rate-limit class with invalid pattern": ("""
[[rate_limit.classes]]
name = "reports"
path = "/api/{workspace/reports"
limit = 5
""", "reports"),
}


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gateway`` with a clean TOKENGATE_* environment and a valid master key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGATE_")}
    env["TOKENGATE_MASTER_KEY"] = generate_master_key()
    return subprocess.run([sys.executable, "-m", "gateway", *args], check=False, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["config", "check"], ["serve", "--listen", "127.0.0.1:0",
                                                           "--admin-listen", "127.0.0.1:0"]])
@pytest.mark.parametrize(("config", "name"), BAD.values(), ids=BAD.keys())
def test_bad_rule_stops_start_up_naming_it(
    tmp_path: Path, command: list[str], config: str, name: str
) -> None:
    """Exit status 2 and a message on stderr that names the rule or class at fault."""
    path = tmp_path / "tokengate.toml"
    path.write_text(config)
    result = run([*command, "--config", str(path)])
    assert result.returncode == 2, result
    assert f"'{name}'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_good_rules_pass_config_check(tmp_path: Path) -> None:
    """A valid rule table passes ``config check`` with exit 0."""
    path = tmp_path / "tokengate.toml"
    path.write_text(GOOD)
    result = run(["config", "check", "--config", str(path)])
    assert result.returncode == 0, result.stderr
