"""Packaging: the distribution's metadata builds cleanly with the setuptools it requires."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from email.parser import HeaderParser
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Build in a copy, so the test writes nothing into the work tree.
BUILD = """
import sys
from setuptools import build_meta
print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))
"""


def test_the_test_environment_has_the_required_setuptools() -> None:
    """The setuptools these tests build with satisfies the build-system requirement."""
    (required,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]
                   if Requirement(r).name == "setuptools"]
    installed = version("setuptools")
    assert required.specifier.contains(installed), (
        f"setuptools {installed} does not satisfy {required}: "
        "run pip install -e '.[test]'")


def test_metadata_builds_with_warnings_as_errors_and_an_spdx_license(tmp_path: Path) -> None:
    """setuptools builds the metadata without a single warning (the deprecated license table
    warned), and the licence is the SPDX expression of PEP 639."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "gateway", src / "gateway",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "metadata"
    out.mkdir()
    built = subprocess.run([sys.executable, "-W", "error", "-c", BUILD, str(out)], cwd=src,
                           capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, built.stderr
    dist_info = out / built.stdout.strip().splitlines()[-1]
    metadata = HeaderParser().parsestr((dist_info / "METADATA").read_text())
    assert metadata["License-Expression"] == PYPROJECT["project"]["license"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]  # the text ships too
    assert metadata["License"] is None
