"""Every example runs as it is and exits 0."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Generous: an example is a short demo; a hang must fail the test, not stall CI.
TIMEOUT_SECONDS = 60


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


def test_there_are_examples() -> None:
    assert (EXAMPLES / "signed_messages.py") in example_files()


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_runs(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        cwd=EXAMPLES.parent,
        check=False,
    )
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{path.name} printed nothing"


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_says_what_it_shows_and_uses_only_the_public_api(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{path.name} needs a docstring saying what it shows"
    assert "examples/" in docstring or "make demo" in docstring, "say how to run it"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            if module.split(".")[0] == "meshedge":
                assert is_public_namespace(module), f"{path.name} imports {module}"


def is_public_namespace(module: str) -> bool:
    """``meshedge`` and its subpackages (``meshedge.wire``, ...), not their modules."""
    parts = module.split(".")
    if parts == ["meshedge"]:
        return True
    package = EXAMPLES.parent / "meshedge" / parts[1] if len(parts) == 2 else None
    return package is not None and (package / "__init__.py").is_file()
