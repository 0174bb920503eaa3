"""Work-stealing benchmark: the peer baselines' workloads on meshedge node processes.

The three workloads of the peer baselines (``benchmarks/peers.py``), run the same way:

- W1: 2,000 tasks sleeping U(1, 20) ms (seed 12345; sum 20.634 s), ideal = sum / W;
- W2: 200 CPU tasks of ~20 ms (a pure-Python loop calibrated here, ``kind="thread"``),
  ideal = sum of each task's ``thread_time`` / min(W, cores), measured in the run;
- W3: 20,000 no-ops, the per-task overhead of submit -> run -> result;

plus W1 on 4 workers with one SIGKILLed when half of the results are in.

Set-up, stated once: W *worker* node processes (``python benchmarks/stealing.py
--worker``: ``open_node`` with this file's registry, ``task_slots=1``, ``Timing.local()``)
and one *submitting* node in this process with ``task_slots=0`` (the client, like the
baselines' client: it runs nothing). So "2 nodes" means 2 workers, W = 2 in the ideal.
Every task is submitted at the submitting node with ``node.map`` (``ordered=False``);
makespan runs from the first submit until this process holds every result. Worker
start-up, joining and a warm-up batch are excluded, as in the baselines. Each run
starts fresh processes. W1's task is the peers' own body, a blocking ``time.sleep``,
registered as ``kind="thread"`` (``--w1-kind async`` runs ``await trio.sleep`` instead:
trio's timer wakes about 1 ms late on this machine, so that variant is capped near
0.91; the "sleep floor" line measures the cap each run). W3's no-op is an async task.

Reported per run: makespan, tasks/s, efficiency (ideal / makespan), steal round trips
(thief: STEAL sent -> TASKS received, p50 / p99), re-executions (tasks run more than
once: executions counted by the workers minus the tasks), CPU per task (this process,
and all workers together), the load average and how busy the box was in the second
before the run. Everything binds 127.0.0.1 (mDNS off); every process started here is
stopped by its PID (SIGTERM, then SIGKILL) in a ``finally``.

Steal round trips come from each worker's ``node.statistics()["tasks"]`` (its p50 and
p99 over the window of answered steals it keeps, warm-up included, and the steals it had
answered during the run): a cell's and all runs' p50 is the median of the workers' p50s
weighted by their steals, and their p99 the largest p99 of a worker (an upper bound of
the p99 of all the steals together).

With ``--peers-python`` this benchmark's own harness for the peers (``peers.py``, run
by that Python) measures ProcessPool / Dask / Ray in the same sitting, skipping each
one that Python cannot import; without it, their stored figures (with their source, in
``docs/reference-figures.md``) are shown, labelled so.

Run from the repository root:

    .venv/bin/python benchmarks/stealing.py [--quick] [--repeats 3] [--only W1,W2,W3,kill]
        [--peers-python /tmp/peers-venv/bin/python] [--profile W3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from harness import (
    ROOT,
    NodeProcess,
    busy_between,
    busy_snapshot,
    cpu_seconds,
    percentile,
    process_group,
    profile_top,
    say,
    stop_processes,
    unique_mesh,
    wait_for_quiet,
    wait_members_alive,
)
from peers import calibrate_cpu, spin, w1_durations

from meshedge.runtime import Node, NodeConfig, TaskRegistry, Timing, format_address, open_node

SCRIPT = Path(__file__).resolve()
#: The stored peer figures, with their source.
REFERENCE = ROOT / "docs" / "reference-figures.md"
#: Seconds any one wait (start-up, joining, a whole run) may take.
WAIT_LIMIT = 300.0
#: Seconds a worker has to stop after SIGTERM before it is SIGKILLed.
STOP_GRACE = 15.0

# ---------------------------------------------------------------------------- tasks

registry = TaskRegistry()
#: Tasks this process ran (a worker reports it when it stops).
executed = 0


def count_run() -> float:
    """Count one task run in this process; the run's start (perf_counter)."""
    global executed
    executed += 1
    return time.perf_counter()


@registry.task(name="bench.sleep")
async def task_sleep(index: int, seconds: float) -> list[float]:
    """W1 with ``--w1-kind async``: return [index, pid, start, end] (perf_counter times)."""
    started = count_run()
    await trio.sleep(seconds)
    return [index, os.getpid(), started, time.perf_counter()]


@registry.task(name="bench.sleep_thread", kind="thread")
def task_sleep_thread(index: int, seconds: float) -> list[float]:
    """W1 (the default): a blocking sleep, like the peers', in a slot thread."""
    started = count_run()
    time.sleep(seconds)
    return [index, os.getpid(), started, time.perf_counter()]


@registry.task(name="bench.cpu", kind="thread")
def task_cpu(index: int, iterations: int) -> list[float]:
    """W2: spin; return [index, pid, start, end, thread CPU seconds]."""
    cpu = time.thread_time()
    started = count_run()
    spin(iterations)
    return [index, os.getpid(), started, time.perf_counter(), time.thread_time() - cpu]


@registry.task(name="bench.noop")
async def task_noop(index: int) -> int:
    """W3: nothing."""
    count_run()
    return index


# ---------------------------------------------------------------------------- worker


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def worker_stats(node: Node, base: dict[str, Any], base_executed: int) -> dict[str, Any]:
    """What happened since the mark: task counters, steals answered, tasks run."""
    stats = node.statistics()["tasks"]
    answered = (stats["steal_requests"] - stats["steal_timeouts"]) - (
        base["steal_requests"] - base["steal_timeouts"]
    )
    return {
        "event": "stats",
        "tasks": {
            k: v - base[k]
            for k, v in stats.items()
            if isinstance(v, int) and k not in ("queued", "running", "pending")
        },
        "steals": [answered, stats["steal_round_trip_p50"], stats["steal_round_trip_p99"]],
        "executed": executed - base_executed,
    }


async def worker_main(mesh: str, seed: str) -> None:
    """A worker node: print 'started'; SIGUSR1 marks the run's start; SIGTERM ends it.

    On SIGTERM it prints what happened since SIGUSR1: its task statistics, its steal
    round trips (from ``statistics()``) and how many tasks it ran.
    """
    config = NodeConfig(
        mesh=mesh, bind="127.0.0.1:0", seeds=(seed,), timing=Timing.local(), task_slots=1
    )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
        async with open_node(config, tasks=registry) as node:
            emit({"event": "started", "id": str(node.id), "address": format_address(node.address)})
            base, base_executed = node.statistics()["tasks"], 0
            async for signum in signals:
                if signum != signal.SIGUSR1:
                    break
                base, base_executed = node.statistics()["tasks"], executed
                emit({"event": "marked"})
            emit(worker_stats(node, base, base_executed))


# ---------------------------------------------------------------------------- helpers


def idle_gaps(results: dict[int, list[Any]], start: float, end: float) -> dict[str, float]:
    """Where the workers' idle time went: between tasks, before the first, after the last.

    Task records carry ``perf_counter`` times (CLOCK_MONOTONIC, the same in every process).
    """
    spans: dict[int, list[tuple[float, float]]] = {}
    for values in results.values():
        spans.setdefault(int(values[0][1]), []).append((values[0][2], values[0][3]))
    gaps: list[float] = []
    head = tail = 0.0
    for runs in spans.values():
        runs.sort()
        head += runs[0][0] - start
        tail += end - max(stop for _, stop in runs)
        gaps += [max(0.0, b[0] - a[1]) for a, b in itertools.pairwise(runs)]
    workers = max(1, len(spans))
    return {
        "gap_p50_ms": percentile(gaps, 0.5) * 1e3 if gaps else 0.0,
        "gap_p99_ms": percentile(gaps, 0.99) * 1e3 if gaps else 0.0,
        "gaps_s": sum(gaps) / workers,
        "head_s": head / workers,
        "tail_s": tail / workers,
    }


def steal_figures(samples: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Steals, p50 and p99 (ms) from workers' ``[answered, p50 s, p99 s]``.

    p50: the median of the workers' p50s weighted by their steals; p99: the largest
    worker p99 (no fewer than 99 % of all the steals took at most that).
    """
    counted = [(n, p50, p99) for n, p50, p99 in samples if n > 0 and p50 is not None]
    total = sum(n for n, _, _ in counted)
    if not total:
        return {"steals": 0, "steal_p50_ms": None, "steal_p99_ms": None}
    seen, median = 0, 0.0
    for n, p50, _ in sorted(counted, key=lambda sample: sample[1]):
        seen += n
        if seen * 2 >= total:
            median = p50
            break
    p99 = max(p99 for _, _, p99 in counted)
    return {"steals": total, "steal_p50_ms": median * 1e3, "steal_p99_ms": p99 * 1e3}


@contextlib.asynccontextmanager
async def mesh_of(workers: int) -> AsyncIterator[tuple[Node, list[NodeProcess]]]:
    """A submitting node here (no slots) and ``workers`` worker processes joined to it."""
    mesh = unique_mesh("bench-steal", 10)
    config = NodeConfig(mesh=mesh, bind="127.0.0.1:0", timing=Timing.local(), task_slots=0)
    async with open_node(config, tasks=registry) as node, process_group(STOP_GRACE) as launch:
        seed = format_address(node.address)
        command = [sys.executable, str(SCRIPT), "--worker", mesh, seed]
        procs = [await launch(f"worker{i}", command, quiet=False) for i in range(workers)]
        for proc in procs:
            await proc.wait_for("started", limit=WAIT_LIMIT)
        await wait_members_alive(node, {p.node_id for p in procs}, WAIT_LIMIT)
        yield node, procs


# ---------------------------------------------------------------------------- one run


@dataclass
class Workload:
    name: str
    task: str
    arguments: list[tuple[Any, ...]]
    #: Seconds of work (W1: the nominal sleeps); None when measured (W2) or none (W3).
    work: float | None


def make_workload(name: str, quick: bool, cpu_iterations: int, w1_kind: str = "thread") -> Workload:
    if name == "W1":
        durations = w1_durations(500 if quick else 2_000)
        task = "bench.sleep" if w1_kind == "async" else "bench.sleep_thread"
        return Workload(name, task, list(enumerate(durations)), sum(durations))
    if name == "W2":
        count = 50 if quick else 200
        return Workload(name, "bench.cpu", [(i, cpu_iterations) for i in range(count)], None)
    count = 5_000 if quick else 20_000
    return Workload(name, "bench.noop", [(i,) for i in range(count)], None)


#: Quiet wait before each run: (threshold, max seconds); set from the command line.
QUIET = (0.5, 30.0)


async def prepare_run(node: Node, procs: list[NodeProcess]) -> dict[str, Any]:
    """Warm up, mark the workers, wait for quiet; the readings taken before the run."""
    # Warm-up: connections, imports and the first steals, outside the makespan.
    warm = [(i,) for i in range(20 * len(procs))]
    async for _ in node.map("bench.noop", warm, ordered=False):
        pass
    marks = [len(p.records) for p in procs]
    for p in procs:
        p.process.send_signal(signal.SIGUSR1)
    for p, mark in zip(procs, marks, strict=True):
        await p.wait_for("marked", mark, limit=WAIT_LIMIT)
    busy, waited = await wait_for_quiet(*QUIET)
    return {
        "busy_before": busy,
        "quiet_wait_s": waited,
        "load1": os.getloadavg()[0],
        "stats": node.statistics()["tasks"],
        "workers_cpu": {p.pid: cpu_seconds(p.pid) for p in procs},
        "own_cpu": time.process_time(),
        "box": busy_snapshot(),
    }


@dataclass
class Outcome:
    """What one timed run delivered: results by task index, and when."""

    results: dict[int, list[Any]]
    started: float
    makespan: float
    victim: NodeProcess | None = None
    killed_after: float | None = None
    profile: str | None = None


def kill_at_share(outcome: Outcome, procs: list[NodeProcess], results: float) -> None:
    """SIGKILL (by its PID) a worker that ran a task, once ``results`` are in."""
    if len(outcome.results) >= results:
        ran = {int(v[0][1]) for v in outcome.results.values()}
        outcome.victim = next(p for p in procs if p.pid in ran)
        outcome.victim.process.kill()
        outcome.killed_after = time.perf_counter() - outcome.started


async def timed_map(
    node: Node, procs: list[NodeProcess], workload: Workload, kill_at: float | None, profile: bool
) -> Outcome:
    """Submit every task; ``kill_at``: SIGKILL a worker at this share of results."""
    profiler = cProfile.Profile() if profile else None
    count = len(workload.arguments)
    outcome = Outcome({}, 0.0, 0.0)
    with trio.fail_after(WAIT_LIMIT):
        if profiler is not None:
            profiler.enable()
        outcome.started = time.perf_counter()
        async for value in node.map(workload.task, workload.arguments, ordered=False):
            index = value if isinstance(value, int) else int(value[0])
            outcome.results.setdefault(index, []).append(value)
            if kill_at is not None and outcome.victim is None:
                kill_at_share(outcome, procs, kill_at * count)
        outcome.makespan = time.perf_counter() - outcome.started
        if profiler is not None:
            profiler.disable()
            outcome.profile = profile_top(profiler, 30)
    return outcome


async def finish_run(
    node: Node, procs: list[NodeProcess], before: dict[str, Any], outcome: Outcome
) -> dict[str, Any]:
    """Readings after the run; stop the surviving workers and collect their statistics."""
    own_cpu = time.process_time() - before["own_cpu"]
    box_busy = busy_between(before["box"], busy_snapshot())
    survivors = [p for p in procs if p is not outcome.victim]
    workers_cpu = sum(cpu_seconds(p.pid) - before["workers_cpu"][p.pid] for p in survivors)
    stats = node.statistics()["tasks"]
    marks = [len(p.records) for p in survivors]
    await stop_processes([p.process for p in survivors], STOP_GRACE)
    reports = [
        await p.wait_for("stats", mark, limit=WAIT_LIMIT)
        for p, mark in zip(survivors, marks, strict=True)
    ]
    return {
        "own_cpu": own_cpu,
        "box_busy": box_busy,
        "workers_cpu": workers_cpu,
        "stats": stats,
        "reports": reports,
    }


def base_row(
    workload: Workload,
    workers: int,
    before: dict[str, Any],
    after: dict[str, Any],
    outcome: Outcome,
) -> dict[str, Any]:
    """The figures every workload has."""
    count = len(workload.arguments)
    row: dict[str, Any] = {
        "workload": workload.name,
        "workers": workers,
        "tasks": count,
        "makespan_s": outcome.makespan,
        "tasks_per_s": count / outcome.makespan,
        "load1": before["load1"],
        "busy_before": before["busy_before"],
        "quiet_wait_s": before["quiet_wait_s"],
        "submitter_cpu_us_per_task": after["own_cpu"] / count * 1e6,
        "workers_cpu_us_per_task": after["workers_cpu"] / count * 1e6,
        # Share of all CPUs busy during the run (any process): near 1, the run was
        # limited by CPU, and overhead CPU (ours or anyone's) costs makespan directly.
        "box_busy": after["box_busy"],
    }
    row["steal_samples"] = [w["steals"] for w in after["reports"]]
    row.update(steal_figures(row["steal_samples"]))
    row["requeued"] = after["stats"]["requeued"] - before["stats"]["requeued"]
    row["duplicates"] = after["stats"]["duplicates"] - before["stats"]["duplicates"]
    # Every value delivered exactly once, and correct.
    results = outcome.results
    row["exactly_once"] = sorted(results) == list(range(count)) and all(
        len(v) == 1 for v in results.values()
    )
    return row


def timed_task_figures(row: dict[str, Any], workload: Workload, outcome: Outcome) -> None:
    """W1 and W2 (tasks that report their times): spread, utilisation, efficiency."""
    results, makespan, workers = outcome.results, outcome.makespan, row["workers"]
    count = len(workload.arguments)
    row["correct"] = row["exactly_once"]
    busy_time = sum(values[0][3] - values[0][2] for values in results.values())
    row["workers_used"] = len({int(values[0][1]) for values in results.values()})
    row.update(idle_gaps(results, outcome.started, outcome.started + makespan))
    # Share of the workers' time spent inside tasks (sleep overshoot included): how
    # well the load was spread, apart from how long each task really took.
    row["utilization"] = busy_time / (workers * makespan)
    if workload.name == "W1":
        row["sleep_overshoot_ms"] = (busy_time - (workload.work or 0.0)) / count * 1e3
        ideal = (workload.work or 0.0) / workers
    else:
        cores = os.cpu_count() or 1
        work = sum(float(v[0][4]) for v in results.values())
        ideal = work / min(workers, cores)
        row["work_s"] = work
    row["ideal_s"] = ideal
    row["efficiency"] = ideal / makespan


def re_executions(
    row: dict[str, Any], workload: Workload, executions: int, outcome: Outcome
) -> None:
    """Tasks run more than once; with a victim, what it delivered counts as run."""
    count = len(workload.arguments)
    if outcome.victim is None:
        row["re_executions"] = executions - count
        return
    # The victim's count died with it: count what it delivered instead.
    pid = outcome.victim.pid
    delivered = sum(1 for v in outcome.results.values() if int(v[0][1]) == pid)
    row["re_executions"] = executions + delivered - count
    row["killed_after_s"] = outcome.killed_after
    row["ideal_3_s"] = (workload.work or 0.0) / (row["workers"] - 1)


async def run_once(
    workload: Workload, workers: int, *, kill_at: float | None = None, profile: bool = False
) -> dict[str, Any]:
    """One run on fresh processes; ``kill_at``: SIGKILL a worker at this share of results."""
    async with mesh_of(workers) as (node, procs):
        before = await prepare_run(node, procs)
        outcome = await timed_map(node, procs, workload, kill_at, profile)
        after = await finish_run(node, procs, before, outcome)
    row = base_row(workload, workers, before, after, outcome)
    executions = sum(w["executed"] for w in after["reports"])
    if workload.name == "W3":
        row["correct"] = all(v == [i] for i, v in outcome.results.items())
    else:
        timed_task_figures(row, workload, outcome)
    re_executions(row, workload, executions, outcome)
    if outcome.profile is not None:
        row["profile"] = outcome.profile
    return row


# ---------------------------------------------------------------------------- peers

PeerTable = dict[tuple[str, str, int], Any]


def run_peers(
    python: str, repeats: int, quick: bool, keep: str | None = None
) -> tuple[PeerTable, str]:
    """Run ``peers.py`` with ``python``; its medians by (workload, backend, workers)."""
    with tempfile.TemporaryDirectory(prefix="peers-") as directory:
        summary_file = Path(directory) / "summary.json"
        command = [python, str(SCRIPT.parent / "peers.py"), "--workers", "2,4"]
        command += ["--repeats", str(repeats), "--quiet-max-wait", "5"]
        command += ["--json", str(summary_file)]
        command += ["--quick"] if quick else []
        command += ["--out-dir", keep] if keep else []
        say("peers: " + " ".join(command[1:]))
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        summary = json.loads(summary_file.read_text())
    table = {(s["workload"], s["backend"], int(s["workers"])): s for s in summary}
    return table, "measured now (same sitting)"


def stored_peers() -> tuple[PeerTable, str]:
    """The stored medians of the peers, from docs/reference-figures.md."""
    table: PeerTable = {}
    workload = ""
    headers: list[str] = []
    names = {"makespan s": "makespan_s", "tasks/s": "tasks_per_s", "eff.": "efficiency"}
    text = REFERENCE.read_text() if REFERENCE.exists() else ""
    section = text.partition("<!-- peers: stored baselines -->")[2].partition("\n## ")[0]
    for line in section.splitlines():
        if match := re.match(r"### (W\d)", line):
            workload = match.group(1)
        elif line.startswith("| backend"):
            headers = [cell.strip() for cell in line.strip("|").split("|")]
        elif line.startswith("| ") and not line.startswith("|---") and headers:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            row = dict(zip(headers, cells, strict=False))
            entry = {names[h]: float(row[h]) for h in names if row.get(h)}
            table[(workload, row["backend"], int(row["W"]))] = entry
    source = REFERENCE.relative_to(ROOT)
    return table, f"STORED figures from {source} (2026-11-26, not re-measured)"


# ---------------------------------------------------------------------------- report


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each numeric field over repeats (booleans: all must hold)."""
    out: dict[str, Any] = dict(rows[0])
    for key, value in rows[0].items():
        if isinstance(value, bool):
            out[key] = all(r[key] for r in rows)
        elif isinstance(value, (int, float)):
            values = [r[key] for r in rows if r.get(key) is not None]
            out[key] = statistics.median(values) if values else None
    out["runs"] = len(rows)
    out["steal_samples"] = [s for r in rows for s in r["steal_samples"]]
    out.update(steal_figures(out["steal_samples"]))
    return out


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


TABLE_HEADER = (
    f"{'system':<10} {'W':>2} {'runs':>4} {'makespan s':>10} {'tasks/s':>8} {'eff.':>6}"
    f" {'steal p50/p99 ms':>17} {'re-exec':>7} {'cpu us/task sub+wrk':>20}"
    f" {'load1':>5} {'busy':>5} {'util.':>5} {'overshoot':>9} {'CPUs busy':>9}"
)


def meshedge_line(c: dict[str, Any]) -> str:
    steal = f"{fmt(c['steal_p50_ms'], '.2f')}/{fmt(c['steal_p99_ms'], '.2f')}"
    cpu = f"{c['submitter_cpu_us_per_task']:.0f}+{c['workers_cpu_us_per_task']:.0f}"
    return (
        f"{'meshedge':<10} {c['workers']:>2} {c['runs']:>4} {c['makespan_s']:>10.3f}"
        f" {c['tasks_per_s']:>8.0f} {fmt(c.get('efficiency'), '.3f'):>6} {steal:>17}"
        f" {c['re_executions']:>7.0f} {cpu:>20} {c['load1']:>5.2f} {c['busy_before']:>5.2f}"
        f" {fmt(c.get('utilization'), '.3f'):>5}"
        f" {fmt(c.get('sleep_overshoot_ms'), '.2f'):>6} ms {c['box_busy']:>9.2f}"
    )


def peer_line(backend: str, workers: int, p: dict[str, Any]) -> str:
    return (
        f"{backend:<10} {workers:>2} {fmt(p.get('runs'), '>4')} "
        f"{fmt(p.get('makespan_s'), '>10.3f')} {fmt(p.get('tasks_per_s'), '>8.0f')}"
        f" {fmt(p.get('efficiency'), '>6.3f')}"
    )


def print_tables(cells: dict[tuple[str, int], dict[str, Any]], peers: PeerTable) -> None:
    for workload in ("W1", "W2", "W3"):
        keys = sorted(k for k in cells if k[0] == workload)
        if not keys:
            continue
        print(f"\n### {workload}")
        print(TABLE_HEADER)
        for key in keys:
            print(meshedge_line(cells[key]))
            for backend in ("procpool", "dask", "dask-push", "ray"):
                p = peers.get((workload, backend, key[1]))
                if p is not None:
                    print(peer_line(backend, key[1], p))


def print_floor(floor: dict[str, float]) -> None:
    print(
        f"\nW1 sleeps with no mesh, one after another ({floor['samples']} of them, fresh"
        f" process): trio.sleep overshoots {floor['trio_overshoot_ms']:.2f} ms each"
        f" (efficiency ceiling {floor['trio_ceiling']:.3f}); time.sleep in a thread"
        f" {floor['thread_overshoot_ms']:.2f} ms (ceiling {floor['thread_ceiling']:.3f})"
    )


class Goals:
    """Print each goal with PASS/MISS; keep the verdicts."""

    def __init__(self) -> None:
        self.verdicts: list[tuple[str, bool]] = []

    def check(self, label: str, value: str, ok: bool) -> None:
        self.verdicts.append((label, ok))
        print(f"{'PASS' if ok else 'MISS'}  {label}: {value}")


def cell_goals(goals: Goals, cells: dict[tuple[str, int], dict[str, Any]]) -> None:
    if ("W1", 4) in cells:
        eff = cells[("W1", 4)]["efficiency"]
        goals.check("W1 efficiency >= 0.93 at 4 nodes", f"{eff:.3f}", eff >= 0.93)
    for workers in (2, 4):
        if ("W2", workers) in cells:
            eff = cells[("W2", workers)]["efficiency"]
            goals.check(f"W2 efficiency >= 0.90 at {workers} nodes", f"{eff:.3f}", eff >= 0.90)
    if ("W3", 2) in cells:
        rate = cells[("W3", 2)]["tasks_per_s"]
        goals.check("W3 >= 3,000 tasks/s with 2 nodes", f"{rate:,.0f} tasks/s", rate >= 3000)
    steals = steal_figures([s for c in cells.values() for s in c.get("steal_samples", [])])
    if steals["steals"]:
        p50, p99 = steals["steal_p50_ms"], steals["steal_p99_ms"]
        n = steals["steals"]
        goals.check("steal round trip p50 <= 1 ms (all runs)", f"{p50:.2f} ms (n={n})", p50 <= 1)
        goals.check("steal round trip p99 <= 5 ms (all runs)", f"{p99:.2f} ms", p99 <= 5)
    all_once = all(c["exactly_once"] and c["correct"] for c in cells.values())
    if cells:
        goals.check("every result exactly once and correct (all runs)", str(all_once), all_once)


def kill_goals(goals: Goals, kill: dict[str, Any]) -> None:
    bound = kill["ideal_3_s"] / 0.85
    goals.check(
        "kill: every result exactly once",
        f"{kill['exactly_once']} (requeued {kill['requeued']}, duplicates dropped "
        f"{kill['duplicates']}, re-executions {kill['re_executions']})",
        kill["exactly_once"] and kill["correct"],
    )
    goals.check(
        "kill: makespan <= ideal(3 survivors) / 0.85",
        f"{kill['makespan_s']:.3f} s vs {bound:.3f} s (ideal(3) {kill['ideal_3_s']:.3f} s;"
        f" killed after {kill['killed_after_s']:.2f} s)",
        kill["makespan_s"] <= bound,
    )


def report(
    cells: dict[tuple[str, int], dict[str, Any]],
    kill: dict[str, Any] | None,
    peers: PeerTable,
    peers_label: str,
    floor: dict[str, float] | None = None,
) -> list[tuple[str, bool]]:
    print()
    print(f"Peers: {peers_label}")
    print_tables(cells, peers)
    if floor is not None:
        print_floor(floor)
    print("\n### Goals")
    goals = Goals()
    cell_goals(goals, cells)
    if kill is not None:
        kill_goals(goals, kill)
    return goals.verdicts


# ---------------------------------------------------------------------------- main


def without_samples(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if k != "steal_samples"})


async def run_cell(
    args: argparse.Namespace, workload: Workload, workers: int
) -> list[dict[str, Any]]:
    """Every repeat of one (workload, workers) cell."""
    runs = []
    for repeat in range(args.repeats):
        say(f"{workload.name} on {workers} workers, run {repeat + 1}/{args.repeats} ...")
        profile = args.profile == workload.name and repeat == 0
        row = await run_once(workload, workers, profile=profile)
        if "profile" in row:
            print(f"\ncProfile of the submitting node, {workload.name}, {workers} workers:")
            print(row.pop("profile"))
        say("  " + without_samples(row))
        runs.append(row)
    return runs


async def run(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only)
    cpu_iterations = calibrate_cpu(20.0) if "W2" in only else 0
    say(f"load average {os.getloadavg()}, {os.cpu_count()} cores; W2 loop {cpu_iterations}")
    rows: list[dict[str, Any]] = []
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for name in ("W1", "W2", "W3"):
        if name not in only:
            continue
        workload = make_workload(name, args.quick, cpu_iterations, args.w1_kind)
        for workers in args.workers:
            runs = await run_cell(args, workload, workers)
            rows += runs
            cells[(name, workers)] = median_row(runs)
    floor = sleep_floor() if "W1" in only else None
    kill = None
    if "kill" in only:
        say("W1 on 4 workers, one SIGKILLed at half ...")
        kill = await run_once(make_workload("W1", args.quick, 0, args.w1_kind), 4, kill_at=0.5)
        say("  " + without_samples(kill))
        rows.append(kill)
    return {"rows": rows, "cells": cells, "kill": kill, "floor": floor}


FLOOR_SAMPLES = 300


async def sleep_floor_main() -> None:
    """Print how long W1's sleeps take with no mesh at all: trio.sleep and time.sleep.

    One after another, in a fresh process like a worker's, the first FLOOR_SAMPLES W1
    durations. The overshoot here is what the event loop and this machine add to every
    sleep: a floor under W1's efficiency that no scheduler can remove.
    """
    durations = w1_durations(2000)[:FLOOR_SAMPLES]
    result: dict[str, float] = {"work_s": sum(durations)}
    started = time.perf_counter()
    for seconds in durations:
        await trio.sleep(seconds)
    result["trio_sleep_s"] = time.perf_counter() - started

    def blocking() -> float:
        begun = time.perf_counter()
        for seconds in durations:
            time.sleep(seconds)
        return time.perf_counter() - begun

    result["time_sleep_s"] = await trio.to_thread.run_sync(blocking)
    emit(result)


def sleep_floor() -> dict[str, float]:
    """Run :func:`sleep_floor_main` in a fresh process; its figures per sleep."""
    output = subprocess.run(
        [sys.executable, str(SCRIPT), "--sleep-floor"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    raw = json.loads(output)
    work = raw["work_s"]
    return {
        "samples": FLOOR_SAMPLES,
        "trio_overshoot_ms": (raw["trio_sleep_s"] - work) / FLOOR_SAMPLES * 1e3,
        "trio_ceiling": work / raw["trio_sleep_s"],
        "thread_overshoot_ms": (raw["time_sleep_s"] - work) / FLOOR_SAMPLES * 1e3,
        "thread_ceiling": work / raw["time_sleep_s"],
    }


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the tasks")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (medians)")
    parser.add_argument(
        "--only", default="W1,W2,W3,kill", type=lambda s: s.split(","), help="sections"
    )
    parser.add_argument(
        "--workers",
        default=[2, 4],
        type=lambda s: [int(n) for n in s.split(",")],
        help="worker counts (default 2,4)",
    )
    parser.add_argument("--peers-python", help="a Python with dask and ray: run the peers now")
    parser.add_argument("--peers-out", help="keep the peers' result files here")
    parser.add_argument("--peers-repeats", type=int, default=1, help="runs per peer cell")
    parser.add_argument(
        "--profile", metavar="WORKLOAD", help="cProfile the submitter in this workload's first run"
    )
    parser.add_argument("--json", help="write every run here")
    parser.add_argument(
        "--w1-kind", choices=("async", "thread"), default="thread", help="W1's sleep task"
    )
    parser.add_argument(
        "--quiet",
        default=(0.5, 30.0),
        type=lambda s: tuple(float(x) for x in s.split(",")),
        help="before each run wait until the box is less busy than THRESHOLD, at most"
        " SECONDS (default 0.5,30)",
    )
    return parser.parse_args()


def main() -> None:
    global QUIET
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        trio.run(worker_main, sys.argv[2], sys.argv[3])
        return
    if sys.argv[1:] == ["--sleep-floor"]:
        trio.run(sleep_floor_main)
        return
    args = parse_arguments()
    QUIET = args.quiet
    print(f"load average at start: {os.getloadavg()}; cores: {os.cpu_count()}")
    results = trio.run(run, args)
    if args.peers_python:
        peers, label = run_peers(args.peers_python, args.peers_repeats, args.quick, args.peers_out)
    else:
        peers, label = stored_peers()
    print(f"load average at end: {os.getloadavg()}")
    verdicts = report(results["cells"], results["kill"], peers, label, results["floor"])
    if args.json:
        Path(args.json).write_text(
            json.dumps({**results, "cells": list(results["cells"].values())}, indent=1)
        )
    sys.exit(0 if all(ok for _, ok in verdicts) else 1)


if __name__ == "__main__":
    main()
