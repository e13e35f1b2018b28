"""The policy package is pure: importing it loads neither aiohttp nor redis."""

from __future__ import annotations

import subprocess
import sys


def test_policy_imports_no_io_libraries() -> None:
    """Every gateway.policy module imports without aiohttp or redis."""
    code = (
        "import pkgutil, importlib, sys, gateway.policy as p\n"
        "for m in pkgutil.iter_modules(p.__path__):\n"
        "    importlib.import_module('gateway.policy.' + m.name)\n"
        "bad = [n for n in ('aiohttp', 'redis') if n in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
