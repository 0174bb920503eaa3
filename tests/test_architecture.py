"""House rules that code review alone would miss: sans-I/O layers, documented public API.

The sans-I/O layers (every module under ``meshedge/wire``, ``meshedge/core`` and
``meshedge/sim``; folders are globbed, so new modules are covered automatically) must not
import I/O, threads or clocks, and must not use the module-level ``random`` functions:
randomness is an injected ``random.Random``. Naming ``random.Random`` (in a type
annotation) is fine anywhere; constructing one is left to the simulator, which must seed
it.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from pathlib import Path

import pytest

import meshedge
import meshedge.wire

PACKAGE = Path(__file__).resolve().parents[1] / "meshedge"
SANS_IO_LAYERS = ("wire", "core", "sim")
#: Modules whose import means I/O, threads or wall-clock time.
FORBIDDEN_IMPORTS = frozenset(
    {"trio", "socket", "threading", "zeroconf", "time", "asyncio", "selectors"}
)


def sans_io_modules() -> list[Path]:
    modules: list[Path] = []
    for layer in SANS_IO_LAYERS:
        folder = PACKAGE / layer
        if folder.is_dir():
            modules.extend(sorted(folder.glob("**/*.py")))
    return modules


def violations(source: str, *, may_construct_random: bool) -> list[str]:
    """Every breach of the sans-I/O rules in ``source``, as readable strings."""
    tree = ast.parse(source)
    found: list[str] = []
    random_modules: set[str] = set()  # names bound to the random module
    random_classes: set[str] = set()  # names bound to random.Random
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in FORBIDDEN_IMPORTS:
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.name == "random":
                    random_modules.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if top in FORBIDDEN_IMPORTS:
                found.append(f"line {node.lineno}: from {node.module} import ...")
            if node.module == "random":
                for alias in node.names:
                    if alias.name == "Random":
                        random_classes.add(alias.asname or "Random")
                    else:
                        found.append(f"line {node.lineno}: from random import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in random_modules
            and node.attr != "Random"
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr} (module-level random)")
        elif isinstance(node, ast.Call):
            func = node.func
            constructs = (isinstance(func, ast.Name) and func.id in random_classes) or (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in random_modules
                and func.attr == "Random"
            )
            if constructs and not may_construct_random:
                found.append(f"line {node.lineno}: constructs random.Random (inject it instead)")
            elif constructs and not (node.args or node.keywords):
                found.append(f"line {node.lineno}: random.Random() without a seed")
            if isinstance(func, ast.Name) and func.id == "__import__":
                found.append(f"line {node.lineno}: __import__()")
    return found


def _module_id(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", sans_io_modules(), ids=_module_id)
def test_sans_io_module_has_no_io_and_no_global_random(path: Path) -> None:
    in_sim = path.relative_to(PACKAGE).parts[0] == "sim"
    found = violations(path.read_text(encoding="utf-8"), may_construct_random=in_sim)
    assert found == [], f"{_module_id(path)} breaks the sans-I/O rule: {found}"


def test_the_wire_layer_is_covered() -> None:
    covered = {p.name for p in sans_io_modules()}
    assert {"_message.py", "_datagram.py", "_keyring.py", "_replay.py", "_cbor.py"} <= covered


@pytest.mark.parametrize(
    ("source", "in_sim"),
    [
        ("import time", False),
        ("import trio.lowlevel", False),
        ("from socket import socket", False),
        ("import threading as t", True),
        ("from zeroconf import Zeroconf", False),
        ("import asyncio, selectors", False),
        ("import random\nrandom.random()", True),
        ("import random as r\nr.shuffle([])", True),
        ("import random\nrandom.seed(1)", True),
        ("from random import choice", True),
        ("from random import Random\nRandom(1)", False),
        ("import random\nrandom.Random(1)", False),
        ("import random\nrandom.Random()", True),
        ("__import__('time')", False),
    ],
)
def test_the_checker_catches_breaches(source: str, in_sim: bool) -> None:
    assert violations(source, may_construct_random=in_sim)


@pytest.mark.parametrize(
    "source",
    [
        "import random\ndef f(rng: random.Random) -> int:\n    return rng.randrange(3)",
        "import random\nrng = random.Random(7)",
        "from random import Random\nrng = Random(seed)",
        "from ..identity import NodeId\nimport hashlib, math",
        "import timeit_lookalike as time_ish",
    ],
)
def test_the_checker_allows_what_is_allowed(source: str) -> None:
    assert violations(source, may_construct_random=True) == []


# --- The public API --------------------------------------------------------------------------


@functools.cache
def _parsed_package() -> list[tuple[list[str], ast.Module]]:
    parsed = []
    for path in sorted(PACKAGE.glob("**/*.py")):
        text = path.read_text(encoding="utf-8")
        parsed.append((text.splitlines(), ast.parse(text)))
    return parsed


def _documented_constant(name: str) -> bool:
    """True if ``name`` is assigned at the top of a module of the package after a ``#:``."""
    for lines, tree in _parsed_package():
        for node in tree.body:
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
                if above.startswith("#:"):
                    return True
    return False


def _has_own_docstring(obj: object) -> bool:
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        # A dataclass without a docstring gets a generated "Name(field, ...)" one.
        return bool(doc and doc.strip()) and not doc.startswith(f"{obj.__name__}(")
    return bool(inspect.getdoc(obj))


@pytest.mark.parametrize("namespace", [meshedge, meshedge.wire], ids=lambda m: m.__name__)
def test_public_names_exist_and_are_documented(namespace: object) -> None:
    exported = namespace.__all__  # type: ignore[attr-defined]
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    undocumented = []
    for name in exported:
        assert hasattr(namespace, name), f"{name} is in __all__ but does not exist"
        if name.startswith("__"):
            continue
        obj = getattr(namespace, name)
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            if not _has_own_docstring(obj):
                undocumented.append(name)
        elif not _documented_constant(name):
            undocumented.append(name)
    assert undocumented == []


def test_every_export_of_meshedge_is_importable_with_star() -> None:
    scope: dict[str, object] = {}
    exec("from meshedge import *", scope)
    assert set(meshedge.__all__) <= set(scope)


API_DOC = PACKAGE.parent / "docs" / "api.md"


def _documented_public_names() -> dict[str, set[str]]:
    """The names in the tables of docs/api.md's "Public names", by namespace.

    The convention: each name is written in backticks as ``meshedge.X`` or
    ``meshedge.wire.X`` in a table row of that section; prose there is not read.
    """
    text = API_DOC.read_text(encoding="utf-8")
    start = text.index("\n## Public names\n")
    end = text.find("\n## ", start + 1)
    rows = [
        line for line in text[start : end if end >= 0 else None].splitlines()
        if line.startswith("|")
    ]
    table = "\n".join(rows)
    return {
        "meshedge": set(re.findall(r"`meshedge\.(\w+)`", table)),
        "meshedge.wire": set(re.findall(r"`meshedge\.wire\.(\w+)`", table)),
    }


@pytest.mark.parametrize("namespace", [meshedge, meshedge.wire], ids=lambda m: m.__name__)
def test_every_export_is_listed_in_the_api_doc_and_every_listed_name_exported(
    namespace: object,
) -> None:
    documented = _documented_public_names()[namespace.__name__]  # type: ignore[attr-defined]
    exported = set(namespace.__all__)  # type: ignore[attr-defined]
    assert sorted(exported - documented) == [], "exported but not in docs/api.md"
    assert sorted(documented - exported) == [], "in docs/api.md but not exported"


def test_the_events_a_core_hands_out_are_public() -> None:
    from meshedge.core import _events as events

    assert {"LeaveCompleted", "MessageReceived", "BroadcastReceived"} <= set(meshedge.__all__)
    assert meshedge.LeaveCompleted is events.LeaveCompleted
    assert meshedge.MessageReceived is events.MessageReceived


# --- Sizes ------------------------------------------------------------------------------

#: A module holds one concept; past this it holds several (STYLE.md, issue 9).
MAX_MODULE_LINES = 500
#: A function does one thing that a reader takes in at once.
MAX_FUNCTION_LINES = 60
SIZE_CHECKED = (PACKAGE, PACKAGE.parent / "benchmarks")


def python_files() -> list[Path]:
    return sorted(path for folder in SIZE_CHECKED for path in folder.glob("**/*.py"))


def long_functions(source: str) -> list[str]:
    """Functions of ``source`` longer than the limit, from ``def`` to their last line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{node.name} (line {node.lineno}): {length} lines")
    return found


def _file_id(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("**/*.py")), ids=_file_id)
def test_no_module_is_over_the_size_limit(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_file_id(path)}: {lines} lines"


@pytest.mark.parametrize("path", python_files(), ids=_file_id)
def test_no_function_is_over_the_size_limit(path: Path) -> None:
    assert long_functions(path.read_text(encoding="utf-8")) == []


def test_the_size_checker_measures_from_def_to_the_last_line() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def f():\n{body}\n") != []
    assert long_functions(f"def f():\n{body[: body.rindex(chr(10))]}\n") == []
