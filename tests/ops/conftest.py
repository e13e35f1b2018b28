"""Fixtures for the operations tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary; a missing one fails the test rather than skipping it."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed; run scripts/test, which installs it "
            "(Debian package `prometheus`)"
        )
    return exe
