"""The command line of ``python -m meshedge.sim``: its options and their checks."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ...core._timing import Timing

__all__ = ["PRESETS", "SCENARIOS", "build_parser"]

#: Names accepted by ``--only``, in the order they run.
SCENARIOS = ("dissemination", "failure", "false-positives", "bandwidth", "partition")
#: Timing presets accepted by ``--timing``.
PRESETS: dict[str, Callable[[], Timing]] = {
    "lan": Timing.lan,
    "wan": Timing.wan,
    "local": Timing.local,
}


def _nodes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 3:
        raise argparse.ArgumentTypeError("a mesh of at least 3 nodes is needed")
    return value


def _loss(text: str) -> float:
    """A probability, as ``0.1`` or ``10%``."""
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if percent:
        value /= 100
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError("loss is a probability from 0 up to (not incl.) 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("a duration is a positive number of seconds")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _scenarios(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or '(none)'}; choose from {', '.join(SCENARIOS)}"
        )
    return chosen


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m meshedge.sim``."""
    parser = argparse.ArgumentParser(
        prog="python -m meshedge.sim",
        description=(
            "Simulate a meshedge mesh and print its membership figures (virtual time): "
            "dissemination, failure detection, false positives, bandwidth, partition heal."
        ),
    )
    parser.add_argument("--nodes", type=_nodes, required=True, help="mesh size (at least 3)")
    parser.add_argument(
        "--loss", type=_loss, default=0.0, help="datagram loss, as 0.1 or 10%% (default 0)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    parser.add_argument(
        "--timing", choices=sorted(PRESETS), default="lan", help="timing preset (default lan)"
    )
    parser.add_argument(
        "--duration",
        type=_seconds,
        default=60.0,
        help="virtual seconds of the bandwidth window and the false-positive run (default 60)",
    )
    parser.add_argument(
        "--partition",
        type=_seconds,
        default=120.0,
        help="virtual seconds the two halves are split (default 120)",
    )
    parser.add_argument(
        "--crashes",
        type=_positive,
        default=3,
        help="nodes crashed one after another for failure detection (default 3)",
    )
    parser.add_argument(
        "--only",
        type=_scenarios,
        default=list(SCENARIOS),
        metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(SCENARIOS)}",
    )
    return parser
