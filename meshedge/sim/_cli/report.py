"""What ``python -m meshedge.sim`` prints: one block of figures per scenario."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ...core._timing import Timing
from ..scenarios import (
    bandwidth,
    dissemination,
    failure_detection,
    false_positives,
    partition_heal,
)

__all__ = ["REPORTS"]


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


#: The report of each scenario name of ``--only``: runs it and prints its figures.
REPORTS: dict[str, Callable[[argparse.Namespace, Timing], None]] = {
    "dissemination": _report_dissemination,
    "failure": _report_failure,
    "false-positives": _report_false_positives,
    "bandwidth": _report_bandwidth,
    "partition": _report_partition,
}
