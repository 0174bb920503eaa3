"""``meshedge --version`` names the package version and the wire protocol version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import meshedge
from meshedge.wire._message import PROTOCOL_VERSION

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_version_prints_package_and_wire_protocol_versions() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meshedge", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"meshedge {meshedge.__version__} (wire protocol {PROTOCOL_VERSION})"
    )
