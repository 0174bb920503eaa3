"""What-if analysis for sizing a mesh: ``python -m meshedge.sim --nodes N --loss P``.

Runs the scenarios of :mod:`meshedge.sim.scenarios` for one configuration — mesh size,
datagram loss, timing preset, seed — and prints how fast a change spreads, how fast a
crash is detected, how many healthy nodes a stalling node gets declared dead (with and
without Lifeguard), what each node sends per second, and how long a split mesh takes to
become one again. Every figure is virtual time of the deterministic simulator (the same
seed gives the same figures on any machine); wall-clock speed is measured by
``benchmarks/membership.py`` instead.

Example::

    python -m meshedge.sim --nodes 500 --loss 0.05 --timing lan
    python -m meshedge.sim --nodes 2000 --only dissemination,bandwidth
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence

from ..core.timing import Timing
from ..errors import LocalProtocolError
from .scenarios import (
    bandwidth,
    dissemination,
    failure_detection,
    false_positives,
    partition_heal,
)

__all__ = ["SCENARIOS", "main"]

#: Names accepted by ``--only``, in the order they run.
SCENARIOS = ("dissemination", "failure", "false-positives", "bandwidth", "partition")
#: Timing presets accepted by ``--timing``.
_PRESETS: dict[str, Callable[[], Timing]] = {
    "lan": Timing.lan,
    "wan": Timing.wan,
    "local": Timing.local,
}
#: Bytes one simulated node's view of one member takes (measured), for the warning
#: about memory: every node keeps a view of every other, so memory grows as N squared.
_BYTES_PER_VIEW_ENTRY = 550
#: Above this estimate, the CLI warns before starting.
_MEMORY_WARNING = 2 * 2**30


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


def _parser() -> argparse.ArgumentParser:
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
        "--timing", choices=sorted(_PRESETS), default="lan", help="timing preset (default lan)"
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


def _time(value: float) -> str:
    return "not reached" if math.isinf(value) else f"{value:.2f} s"


def _line(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<38} {value:>16}  {note}".rstrip(), flush=True)


def _report_dissemination(args: argparse.Namespace, timing: Timing) -> None:
    result = dissemination(args.nodes, args.loss, args.seed, timing)
    model = result.model
    print("\ndissemination of one node's tag change (time after set_tags)", flush=True)
    _line("99 % of nodes informed", _time(result.informed_99), f"model {model.seconds_99:.2f} s")
    _line(
        "99.99 % of nodes informed",
        _time(result.informed_9999),
        f"model {model.seconds_9999:.2f} s",
    )
    _line("every node informed", _time(result.all_informed), f"model {model.seconds_all:.2f} s")
    _line(
        f"lower bound, log_{model.fanout + 1}(N) gossip rounds",
        f"{model.lower_bound:.2f} s",
        "(model: Serf's convergence model for this fanout, interval and loss)",
    )
    if result.informed < args.nodes:
        _line("informed when the run ended", f"{result.informed} of {args.nodes}")


def _report_failure(args: argparse.Namespace, timing: Timing) -> None:
    crashes = min(args.crashes, args.nodes - 2)
    result = failure_detection(args.nodes, args.seed, timing, crashes=crashes, loss=args.loss)
    print(f"\nfailure detection ({crashes} crash(es), one after another; mean / worst)", flush=True)
    worst_suspicion = max(result.first_suspicion)
    _line(
        "first suspicion anywhere",
        f"{_time(result.mean_first_suspicion)} / {_time(worst_suspicion)}",
        f"SWIM: e/(e-1) x probe interval = {result.expected_first_suspicion:.2f} s",
    )
    first_dead = sum(result.first_dead) / len(result.first_dead)
    _line(
        "first node declares it dead",
        f"{_time(first_dead)} / {_time(max(result.first_dead))}",
        "suspicion timeout {:.1f}..{:.1f} s".format(*timing.suspicion_timeouts(args.nodes)),
    )
    mean_all = sum(result.all_dead) / len(result.all_dead)
    _line(
        "every live node has it dead",
        f"{_time(mean_all)} / {_time(result.worst_all_dead)}",
    )


def _report_false_positives(args: argparse.Namespace, timing: Timing) -> None:
    comparison = false_positives(args.nodes, args.loss, args.seed, timing, duration=args.duration)
    print(
        f"\nfalse positives (node 0 frozen 2 s every 10 s for {args.duration:g} s; "
        "Lifeguard vs plain SWIM)",
        flush=True,
    )
    on, off = comparison.lifeguard, comparison.swim
    _line(
        "healthy nodes declared dead",
        f"{on.healthy_declared_dead} vs {off.healthy_declared_dead}",
        f"({on.false_deaths} vs {off.false_deaths} MemberFailed events)",
    )
    _line(
        "suspicions of healthy nodes",
        f"{on.suspicion_episodes} vs {off.suspicion_episodes}",
        f"({on.suspicions} vs {off.suspicions} MemberSuspected events)",
    )
    _line(
        "frozen node suspected / declared dead",
        f"{on.frozen_node_suspicions}/{on.frozen_node_deaths} vs "
        f"{off.frozen_node_suspicions}/{off.frozen_node_deaths}",
        "(events)",
    )


def _report_bandwidth(args: argparse.Namespace, timing: Timing) -> None:
    result = bandwidth(args.nodes, args.seed, args.duration, timing, loss=args.loss)
    print(f"\nbandwidth sent per node (steady state, {args.duration:g} s window)", flush=True)
    _line("mean", f"{result.mean_bytes_per_second:.0f} B/s")
    _line("99th percentile", f"{result.p99_bytes_per_second:.0f} B/s")
    _line("busiest node", f"{result.max_bytes_per_second:.0f} B/s")
    _line("datagrams per node", f"{result.mean_packets_per_second:.1f} /s")


def _report_partition(args: argparse.Namespace, timing: Timing) -> None:
    result = partition_heal(args.nodes, args.seed, timing, partition=args.partition, loss=args.loss)
    first, second = result.halves
    print(f"\npartition {first}|{second} for {args.partition:g} s, then heal", flush=True)
    _line("each half sees only itself alive after", _time(result.separated))
    _line("one mesh again after the heal", _time(result.healed), "(every node ALIVE in every view)")


_REPORTS: dict[str, Callable[[argparse.Namespace, Timing], None]] = {
    "dissemination": _report_dissemination,
    "failure": _report_failure,
    "false-positives": _report_false_positives,
    "bandwidth": _report_bandwidth,
    "partition": _report_partition,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the chosen scenarios and print their figures.

    Args:
        argv: the arguments (``sys.argv[1:]`` by default).

    Returns:
        The exit status: 0 on success, 2 for a usage error (argparse exits by itself
        for a malformed command line).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    timing = _PRESETS[args.timing]()
    print(
        f"meshedge simulator: N={args.nodes}, loss {args.loss:.1%}, Timing.{args.timing}() "
        f"(probe {timing.probe_interval:g} s, gossip {timing.gossip_interval:g} s to "
        f"{timing.gossip_nodes}), seed {args.seed}"
    )
    print("Figures are virtual seconds of the deterministic simulator.", flush=True)
    memory = _BYTES_PER_VIEW_ENTRY * args.nodes * args.nodes
    if memory > _MEMORY_WARNING:
        print(
            f"note: N={args.nodes} needs about {memory / 2**30:.0f} GiB of memory "
            "(every simulated node keeps a view of every other)",
            flush=True,
        )
    try:
        for name in SCENARIOS:
            if name in args.only:
                _REPORTS[name](args, timing)
    except LocalProtocolError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
