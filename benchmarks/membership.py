"""Membership benchmark: the issue's figures, each next to its goal, in one run.

Every protocol figure is measured in virtual time by the deterministic simulator, which
drives the real membership cores (``meshedge.sim.scenarios``); only the last one, the
simulator's own speed, is wall-clock time (``time.perf_counter``). Timing is
``Timing.lan()`` (memberlist's LAN defaults) throughout.

- dissemination of a tag change at N=100 and 1000 (and 10000 with ``--huge``), at 0 %
  and 10 % loss, next to Serf's convergence model; goal at N=1000: everyone within 2.2 s
  at 0 % loss and 2.4 s at 10 % loss;
- failure detection at N=1000: first suspicion against SWIM's e/(e-1) probe intervals,
  and every live node has the crashed one dead within 20 s;
- false positives at N=100, 10 % loss, one node frozen 2 s every 10 s for 600 s: no
  healthy node declared dead with Lifeguard, and the ratio to plain SWIM;
- bandwidth in steady state at N=100 and 1000: growth <= 1.3x and p99 <= 1.5 KiB/s per
  node at N=1000 (memberlist measured 0.64 KB/s mean, 6.4 KB/s p99 at N=1000);
- a 60|60 partition for 120 s, then heal: one mesh again within 120 s;
- simulator speed: N=1000 for 60 virtual seconds within 60 wall seconds.

Run it from the repository root (several minutes on 2 cores; ``--quick`` is a smaller
smoke run whose verdicts are only indicative)::

    .venv/bin/python benchmarks/membership.py [--quick] [--huge] [--seed 1] [--only speed]

It uses no network and no real clock for the protocol.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meshedge import Timing
from meshedge.sim import Simulation
from meshedge.sim.scenarios import (
    SWIM_FIRST_DETECTION_PERIODS,
    bandwidth,
    dissemination,
    failure_detection,
    false_positives,
    partition_heal,
)

#: Everyone informed at N=1000 within this many seconds, by loss.
DISSEMINATION_GOALS = {0.0: 2.2, 0.10: 2.4}
#: Every live node has a crashed node dead within this many seconds.
ALL_DEAD_GOAL = 20.0
#: Mean bytes/s per node may grow at most this much from N=100 to N=1000.
BANDWIDTH_GROWTH_GOAL = 1.3
#: Bytes/s per node (99th percentile) at N=1000.
BANDWIDTH_GOAL = 1.5 * 1024
#: memberlist's measured figures at N=1000 (bytes/s per node), for reference; their
#: source: docs/reference-figures.md.
MEMBERLIST_MEAN, MEMBERLIST_P99 = 640.0, 6400.0
#: A healed 60|60 partition is one mesh again within this many seconds.
HEAL_GOAL = 120.0
#: Wall seconds for N=1000 and 60 virtual seconds.
SPEED_GOAL = 60.0
#: Bytes one node's view of one member takes in the simulator (measured), to refuse a
#: --huge run that cannot fit in memory.
BYTES_PER_VIEW_ENTRY = 550


@dataclass(frozen=True, slots=True)
class Sizes:
    """Mesh sizes and durations of one benchmark run."""

    dissemination: tuple[int, ...]
    failure_nodes: int
    crashes: int
    false_positive_nodes: int
    false_positive_duration: float
    bandwidth: tuple[int, int]
    bandwidth_duration: float
    partition_nodes: int
    partition: float
    speed_nodes: int
    speed_seconds: float
    lossy_bandwidth: tuple[int, ...]


FULL = Sizes(
    (100, 1000), 1000, 10, 100, 600.0, (100, 1000), 60.0, 120, 120.0, 1000, 60.0, (100, 300)
)
QUICK = Sizes((50, 200), 200, 3, 50, 60.0, (50, 200), 20.0, 40, 30.0, 200, 10.0, (50,))
HUGE = 10_000
#: Virtual seconds of the informational bandwidth runs at 10 % loss.
LOSSY_WINDOW = 20.0

results: list[bool] = []


def verdict(ok: bool) -> str:
    results.append(ok)
    return "PASS" if ok else "MISS"


def seconds(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.2f} s"


def heading(title: str) -> None:
    print(f"\n{title}", flush=True)


def row(label: str, value: str, goal: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else verdict(ok)
    print(f"  {label:<46} {value:>12}   {goal:<34} {mark}".rstrip(), flush=True)


def row_within(label: str, value: float, limit: float) -> None:
    """A row of seconds with its goal: at most ``limit`` seconds."""
    row(label, seconds(value), f"goal <= {limit:g} s", value <= limit)


def available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def run_dissemination(sizes: Sizes, seed: int, huge: bool) -> None:
    heading("Dissemination of one node's tag change (virtual s after set_tags)")
    print("  99 % / 99.99 % / 100 % of nodes informed; model = Serf's convergence model")
    counts = list(sizes.dissemination) + ([HUGE] if huge else [])
    for nodes in counts:
        if nodes == HUGE:
            need = BYTES_PER_VIEW_ENTRY * nodes * nodes
            have = available_memory()
            if have is not None and need > 0.8 * have:
                row(
                    f"N={nodes}",
                    "SKIP",
                    f"needs ~{need / 2**30:.0f} GiB, {have / 2**30:.0f} GiB free",
                )
                continue
        for loss in (0.0, 0.10):
            result = dissemination(nodes, loss, seed)
            model = result.model
            measured = (
                f"{seconds(result.informed_99)} / {seconds(result.informed_9999)} / "
                f"{seconds(result.all_informed)}"
            )
            print(f"  N={nodes:<5} loss {loss:>4.0%}  measured {measured}", flush=True)
            print(
                f"  {'':<17} model    {model.seconds_99:.2f} s / {model.seconds_9999:.2f} s / "
                f"{model.seconds_all:.2f} s   lower bound log_{model.fanout + 1}(N) rounds = "
                f"{model.lower_bound:.2f} s",
                flush=True,
            )
            goal = DISSEMINATION_GOALS.get(loss)
            if goal is not None and nodes == 1000:
                row_within(
                    f"N=1000 loss {loss:.0%}: everyone informed",
                    result.all_informed,
                    goal,
                )


def run_failure_detection(sizes: Sizes, seed: int) -> None:
    nodes = sizes.failure_nodes
    heading(f"Failure detection, N={nodes}, {sizes.crashes} crashes one after another")
    result = failure_detection(nodes, seed, crashes=sizes.crashes)
    period = result.probe_interval
    swim = SWIM_FIRST_DETECTION_PERIODS * period
    print(
        "  first suspicion per crash: "
        + ", ".join(f"{s:.2f}" for s in result.first_suspicion)
        + " s",
        flush=True,
    )
    row(
        "first suspicion anywhere (mean)",
        seconds(result.mean_first_suspicion),
        f"SWIM e/(e-1)*T = {swim:.2f} s",
    )
    # SWIM's e/(e-1) periods assume the crash at the start of a synchronous period; a
    # crash at a random moment of unsynchronised probing waits half a period more.
    row(
        "  same, against a crash at a random moment",
        seconds(result.mean_first_suspicion),
        f"goal <= (e/(e-1) + 1/2)*T = {swim + period / 2:.2f} s",
        result.mean_first_suspicion <= swim + period / 2,
    )
    row("first node declares it dead (mean)", seconds(sum(result.first_dead) / sizes.crashes))
    row_within("every live node has it dead (worst)", result.worst_all_dead, ALL_DEAD_GOAL)


def run_false_positives(sizes: Sizes, seed: int) -> None:
    nodes, duration = sizes.false_positive_nodes, sizes.false_positive_duration
    heading(
        f"False positives, N={nodes}, loss 10 %, node 0 frozen 2 s every 10 s, "
        f"{duration:.0f} virtual s"
    )
    comparison = false_positives(nodes, 0.10, seed, duration=duration)
    for name, run in (("Lifeguard", comparison.lifeguard), ("plain SWIM", comparison.swim)):
        row(
            f"{name}: healthy nodes declared dead",
            str(run.healthy_declared_dead),
            f"({run.false_deaths} MemberFailed events)",
        )
        row(
            f"{name}: suspicions of healthy nodes",
            str(run.suspicion_episodes),
            f"({run.suspicions} MemberSuspected events)",
        )
        row(
            f"{name}: frozen node suspected / dead",
            f"{run.frozen_node_suspicions} / {run.frozen_node_deaths}",
            "(events; expected while frozen)",
        )
    row(
        "Lifeguard: healthy nodes declared dead",
        str(comparison.lifeguard.healthy_declared_dead),
        "goal 0",
        comparison.lifeguard.healthy_declared_dead == 0,
    )
    deaths = comparison.death_ratio
    if deaths is None:
        ratio = "inf" if comparison.swim.false_deaths else "equal (0)"
    else:
        ratio = f"{deaths:.1f}x"
    row(
        "false deaths, SWIM / Lifeguard",
        ratio,
        f"(SWIM {comparison.swim.false_deaths}, Lifeguard {comparison.lifeguard.false_deaths})",
    )
    suspicions = comparison.suspicion_ratio
    row(
        "suspicions of healthy nodes, SWIM / Lifeguard",
        "n/a" if suspicions is None else f"{suspicions:.2f}x",
    )


def run_bandwidth(sizes: Sizes, seed: int) -> None:
    small, large = sizes.bandwidth
    duration = sizes.bandwidth_duration
    heading(f"Bandwidth in steady state, {duration:.0f} virtual s after a warm-up, loss 0 %")
    found = {}
    for nodes in (small, large):
        result = bandwidth(nodes, seed, duration)
        found[nodes] = result
        row(
            f"N={nodes}: bytes/s per node mean / p99 / max",
            f"{result.mean_bytes_per_second:.0f} / {result.p99_bytes_per_second:.0f} / "
            f"{result.max_bytes_per_second:.0f}",
            f"{result.mean_packets_per_second:.1f} datagrams/s per node",
        )
    growth = found[large].mean_bytes_per_second / found[small].mean_bytes_per_second
    row(
        f"growth of the mean, N={small} -> {large}",
        f"{growth:.2f}x",
        f"goal <= {BANDWIDTH_GROWTH_GOAL}x",
        growth <= BANDWIDTH_GROWTH_GOAL,
    )
    p99 = found[large].p99_bytes_per_second
    row(
        f"N={large}: p99 per node",
        f"{p99 / 1024:.2f} KiB/s",
        f"goal <= {BANDWIDTH_GOAL / 1024} KiB/s",
        p99 <= BANDWIDTH_GOAL,
    )
    print(
        f"  (memberlist at N=1000: {MEMBERLIST_MEAN / 1000:.2f} KB/s mean, "
        f"{MEMBERLIST_P99 / 1000:.1f} KB/s p99)",
        flush=True,
    )
    lossy = sizes.lossy_bandwidth
    print(f"  at 10 % loss ({LOSSY_WINDOW:.0f} virtual s; no goal, see docs/membership.md):")
    for nodes in lossy:
        result = bandwidth(nodes, seed, LOSSY_WINDOW, loss=0.10)
        row(
            f"N={nodes}, loss 10 %: bytes/s mean / p99",
            f"{result.mean_bytes_per_second:.0f} / {result.p99_bytes_per_second:.0f}",
            f"{result.mean_packets_per_second:.1f} datagrams/s per node",
        )


def run_partition(sizes: Sizes, seed: int) -> None:
    nodes, length = sizes.partition_nodes, sizes.partition
    half = nodes // 2
    heading(f"Partition {half}|{nodes - half} for {length:.0f} virtual s, then heal")
    result = partition_heal(nodes, seed, partition=length)
    row("each half sees only itself alive after", seconds(result.separated))
    row_within("one mesh again (all ALIVE in every view) after", result.healed, HEAL_GOAL)


def run_speed(sizes: Sizes, seed: int) -> None:
    nodes, virtual = sizes.speed_nodes, sizes.speed_seconds
    heading(f"Simulator speed, N={nodes}, {virtual:.0f} virtual s, loss 0 % (wall clock)")
    # On a shared machine wall time depends on the other tenants: the CPU time of this
    # process and the load average say how much.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  load average before: {load:.1f} on {os.cpu_count()} CPUs", flush=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    sim = Simulation(nodes, seed=seed, timing=Timing.lan(), prejoined=True)
    built, cpu_built = time.perf_counter(), time.process_time()
    sim.run_for(virtual)
    finished, cpu_finished = time.perf_counter(), time.process_time()
    row(
        "build the prejoined mesh",
        f"{built - started:.1f} s",
        f"(CPU {cpu_built - cpu_started:.1f} s)",
    )
    row(
        f"run {virtual:.0f} virtual s",
        f"{finished - built:.1f} s",
        f"(CPU {cpu_finished - cpu_built:.1f} s)",
    )
    row(
        "total",
        f"{finished - started:.1f} s",
        f"goal <= {SPEED_GOAL:.0f} s (CPU {cpu_finished - cpu_started:.1f} s)",
        finished - started <= SPEED_GOAL,
    )


SECTIONS: dict[str, Callable[[Sizes, int], None]] = {
    "dissemination": lambda sizes, seed: run_dissemination(sizes, seed, False),
    "failure": run_failure_detection,
    "false-positives": run_false_positives,
    "bandwidth": run_bandwidth,
    "partition": run_partition,
    "speed": run_speed,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a smoke run")
    parser.add_argument("--huge", action="store_true", help="also dissemination at N=10000")
    parser.add_argument("--seed", type=int, default=1, help="seed of every simulation")
    parser.add_argument(
        "--only",
        choices=sorted(SECTIONS),
        action="append",
        help="run only this section (repeatable); all by default",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    timing = Timing.lan()
    print("meshedge membership benchmark" + (" (--quick: verdicts indicative only)" * args.quick))
    print(
        f"Python {platform.python_version()} on {platform.machine()}, seed {args.seed}; "
        f"Timing.lan(): probe {timing.probe_interval} s (timeout {timing.probe_timeout} s), "
        f"gossip {timing.gossip_interval} s to {timing.gossip_nodes}, "
        f"push-pull {timing.push_pull_interval} s"
    )
    print("Times are virtual seconds of the simulator unless marked wall clock.", flush=True)
    started = time.perf_counter()
    for name, section in SECTIONS.items():
        if not args.only or name in args.only:
            if name == "dissemination":
                run_dissemination(sizes, args.seed, args.huge)
            else:
                section(sizes, args.seed)
    print(
        f"\n{results.count(True)} PASS, {results.count(False)} MISS "
        f"({time.perf_counter() - started:.0f} wall s in all)"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
