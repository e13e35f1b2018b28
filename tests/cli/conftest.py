"""Fixtures for the CLI tests: the ``tokengate`` command against the test Redis."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.keys import generate_master_key
from tests.admin.support import cli_env, run_cli


@dataclass
class Cli:
    """Runs ``tokengate`` subcommands against one store with one master key."""

    store: str
    master_key: str

    def run(self, *args: str, store: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a subcommand (with ``--store`` unless told not to); the finished process."""
        extra = ["--store", self.store] if store else []
        return run_cli(*args, *extra, env=cli_env(self.master_key))

    def json(self, *args: str) -> Any:
        """Run a subcommand with ``--json``; insist on exit 0 and return the parsed output."""
        out = self.run(*args, "--json")
        assert out.returncode == 0, out.stderr
        assert out.stderr == ""
        return json.loads(out.stdout)

    def fails(self, *args: str, code: int = 1) -> str:
        """Run a subcommand that must fail with ``code`` and one clean line; that line."""
        out = self.run(*args)
        assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        return lines[0]


@pytest.fixture
def cli(redis_url: str) -> Cli:
    """The CLI on the test Redis (emptied for each test) with a fresh master key."""
    return Cli(redis_url, generate_master_key())
