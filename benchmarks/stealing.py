"""Work-stealing benchmark: the peer baselines' workloads on meshedge node processes.

The three workloads of ``shared/bench/peers/bench_baselines.py``, run the same way:

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
(thief: STEAL sent -> TASKS received, p50 / p99 over every worker), re-executions
(tasks run more than once: executions counted by the workers minus the tasks), CPU per
task (this process, and all workers together), the load average and how busy the box
was in the second before the run. Everything binds 127.0.0.1 (mDNS off); every process
started here is stopped by its PID (SIGTERM, then SIGKILL) in a ``finally``.

With ``--peers-python`` the peers' harness (``bench_baselines.py``, run from a copy in
a temporary directory) measures ProcessPool / Dask / Ray in the same sitting; without
it, their stored figures (``results-2026-11-26/summary.md``) are shown, labelled so.

Run from the repository root:

    .venv/bin/python benchmarks/stealing.py [--quick] [--repeats 3] [--only W1,W2,W3,kill]
        [--peers-python /tmp/peers-venv/bin/python] [--profile W3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import json
import math
import os
import pstats
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from meshedge.cli.run import json_records
from meshedge.core.stealing import ROUND_TRIP_SAMPLES
from meshedge.runtime import MemberState, NodeConfig, Timing, format_address, open_node
from meshedge.runtime.node import Node
from meshedge.runtime.tasks import TaskRegistry

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
ROOT = HERE.parent
PEERS = Path("/work/shared/bench/peers")
STORED_PEERS = PEERS / "results-2026-11-26" / "summary.md"
#: Seconds any one wait (start-up, joining, a whole run) may take.
WAIT_LIMIT = 300.0

# ---------------------------------------------------------------------------- tasks

registry = TaskRegistry()
#: Tasks this process ran (a worker reports it when it stops).
executed = 0


@registry.task(name="bench.sleep")
async def task_sleep(index: int, seconds: float) -> list[float]:
    """W1 with ``--w1-kind async``: return [index, pid, start, end] (perf_counter times)."""
    global executed
    executed += 1
    started = time.perf_counter()
    await trio.sleep(seconds)
    return [index, os.getpid(), started, time.perf_counter()]


@registry.task(name="bench.sleep_thread", kind="thread")
def task_sleep_thread(index: int, seconds: float) -> list[float]:
    """W1 (the default): a blocking sleep, like the peers', in a slot thread."""
    global executed
    executed += 1
    started = time.perf_counter()
    time.sleep(seconds)
    return [index, os.getpid(), started, time.perf_counter()]


def spin(iterations: int) -> int:
    """The baselines' CPU loop."""
    x = 0
    for i in range(iterations):
        x = (x * 1103515245 + i) & 0xFFFFFFFF
    return x


@registry.task(name="bench.cpu", kind="thread")
def task_cpu(index: int, iterations: int) -> list[float]:
    """W2: spin; return [index, pid, start, end, thread CPU seconds]."""
    global executed
    executed += 1
    cpu = time.thread_time()
    started = time.perf_counter()
    spin(iterations)
    return [index, os.getpid(), started, time.perf_counter(), time.thread_time() - cpu]


@registry.task(name="bench.noop")
async def task_noop(index: int) -> int:
    """W3: nothing."""
    global executed
    executed += 1
    return index


# ---------------------------------------------------------------------------- worker


async def worker_main(mesh: str, seed: str) -> None:
    """A worker node: print 'started'; SIGUSR1 marks the run's start; SIGTERM ends it.

    On SIGTERM it prints what happened since SIGUSR1: its task statistics, its steal
    round trips and how many tasks it ran.
    """
    config = NodeConfig(
        mesh=mesh, bind="127.0.0.1:0", seeds=(seed,), timing=Timing.local(), task_slots=1
    )
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
        async with open_node(config, tasks=registry) as node:
            record = {
                "event": "started",
                "id": str(node.id),
                "address": format_address(node.address),
            }
            print(json.dumps(record), flush=True)
            # Benchmark only: the raw samples behind statistics()' percentiles.
            stealing = node._core.stealing
            assert stealing is not None
            base_stats, base_trips, base_executed = node.statistics()["tasks"], 0, 0
            async for signum in signals:
                if signum == signal.SIGUSR1:
                    base_stats = node.statistics()["tasks"]
                    base_trips = len(stealing.steal_round_trips())
                    base_executed = executed
                    print(json.dumps({"event": "marked"}), flush=True)
                    continue
                break
            stats = node.statistics()["tasks"]
            answered = (stats["steal_requests"] - stats["steal_timeouts"]) - (
                base_stats["steal_requests"] - base_stats["steal_timeouts"]
            )
            trips = stealing.steal_round_trips()
            trips = trips[base_trips:] if len(trips) < ROUND_TRIP_SAMPLES else trips
            record = {
                "event": "stats",
                "tasks": {
                    k: v - base_stats[k]
                    for k, v in stats.items()
                    if isinstance(v, int) and k not in ("queued", "running", "pending")
                },
                "round_trips": trips[-answered:] if answered > 0 else [],
                "executed": executed - base_executed,
            }
            print(json.dumps(record), flush=True)


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


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_snapshot() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:9]]
    return sum(values), values[3] + values[4]


async def busy_fraction(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy (any process) over ``seconds``, from /proc/stat."""
    total0, idle0 = busy_snapshot()
    await trio.sleep(seconds)
    total1, idle1 = busy_snapshot()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def w1_durations(count: int, seed: int = 12345) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(1.0, 20.0) / 1000.0 for _ in range(count)]


def calibrate_cpu(target_ms: float) -> int:
    """Iterations of ``spin`` that take ``target_ms`` here (the baselines' method)."""
    probe = 200_000
    spin(probe)

    def timed(iterations: int) -> float:
        started = time.perf_counter()
        spin(iterations)
        return time.perf_counter() - started

    per_iteration = statistics.median(timed(probe) for _ in range(5)) / probe
    return max(1, round(target_ms / 1000.0 / per_iteration))


@dataclass
class WorkerProcess:
    process: trio.Process
    records: list[dict[str, Any]] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)
    node_id: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for record in json_records(self.process.stdout):
            if record.get("event") == "started":
                self.node_id = record["id"]
            self.records.append(record)
            self.changed.set()
            self.changed = trio.Event()

    def last(self, event: str) -> dict[str, Any] | None:
        for record in reversed(self.records):
            if record.get("event") == event:
                return record
        return None

    async def wait_for(self, event: str, after: int = 0) -> dict[str, Any]:
        with trio.fail_after(WAIT_LIMIT):
            while True:
                for record in self.records[after:]:
                    if record.get("event") == event:
                        return record
                if self.process.returncode is not None:
                    raise RuntimeError(f"worker {self.pid} exited ({self.process.returncode})")
                await self.changed.wait()


@contextlib.asynccontextmanager
async def mesh_of(workers: int) -> AsyncIterator[tuple[Node, list[WorkerProcess]]]:
    """A submitting node here (no slots) and ``workers`` worker processes joined to it."""
    mesh = f"bench-steal-{uuid.uuid4().hex[:10]}"
    config = NodeConfig(mesh=mesh, bind="127.0.0.1:0", timing=Timing.local(), task_slots=0)
    started: list[WorkerProcess] = []
    async with open_node(config, tasks=registry) as node, trio.open_nursery() as nursery:
        try:
            seed = format_address(node.address)
            for _ in range(workers):
                process = await trio.lowlevel.open_process(
                    [sys.executable, str(SCRIPT), "--worker", mesh, seed],
                    stdout=subprocess.PIPE,
                    stdin=subprocess.DEVNULL,
                    cwd=ROOT,
                )
                worker = WorkerProcess(process)
                started.append(worker)
                nursery.start_soon(worker.read)
            for worker in started:
                await worker.wait_for("started")
            ids = {w.node_id for w in started}
            with trio.fail_after(WAIT_LIMIT):
                while True:
                    alive = {str(m.id) for m in node.members() if m.state == MemberState.ALIVE}
                    if ids <= alive:
                        break
                    await trio.sleep(0.02)
            yield node, started
        finally:
            with trio.CancelScope(shield=True):
                await stop_processes([w.process for w in started])
            nursery.cancel_scope.cancel()


async def stop_processes(processes: Sequence[trio.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    with trio.move_on_after(15):
        for process in processes:
            await process.wait()
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


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


async def wait_for_quiet(threshold: float, max_wait: float) -> tuple[float, float]:
    """Wait (at most ``max_wait``) until the box is less busy than ``threshold``."""
    started = time.monotonic()
    busy = await busy_fraction(1.0)
    while busy > threshold and time.monotonic() - started < max_wait:
        busy = await busy_fraction(1.0)
    return busy, time.monotonic() - started


#: Quiet wait before each run: (threshold, max seconds); set from the command line.
QUIET = (0.5, 30.0)


async def run_once(
    workload: Workload, workers: int, *, kill_at: float | None = None, profile: bool = False
) -> dict[str, Any]:
    """One run on fresh processes; ``kill_at``: SIGKILL a worker at this share of results."""
    async with mesh_of(workers) as (node, procs):
        # Warm-up: connections, imports and the first steals, outside the makespan.
        warm = [(i,) for i in range(20 * workers)]
        async for _ in node.map("bench.noop", warm, ordered=False):
            pass
        marks = [len(p.records) for p in procs]
        for p in procs:
            p.process.send_signal(signal.SIGUSR1)
        for p, mark in zip(procs, marks, strict=True):
            await p.wait_for("marked", mark)
        busy, waited = await wait_for_quiet(*QUIET)
        load1 = os.getloadavg()[0]
        stats_before = node.statistics()["tasks"]
        cpu_before = [cpu_seconds(p.pid) for p in procs]
        own_before = time.process_time()
        box_before = busy_snapshot()
        profiler = cProfile.Profile() if profile else None
        results: dict[int, list[Any]] = {}
        victim: WorkerProcess | None = None
        count = len(workload.arguments)
        killed_after = None
        with trio.fail_after(WAIT_LIMIT):
            if profiler is not None:
                profiler.enable()
            started = time.perf_counter()
            async for value in node.map(workload.task, workload.arguments, ordered=False):
                index = value if isinstance(value, int) else int(value[0])
                results.setdefault(index, []).append(value)
                if kill_at is not None and victim is None and len(results) >= kill_at * count:
                    ran = {int(v[0][1]) for v in results.values()}
                    victim = next(p for p in procs if p.pid in ran)
                    victim.process.kill()  # SIGKILL, by its PID
                    killed_after = time.perf_counter() - started
            makespan = time.perf_counter() - started
            if profiler is not None:
                profiler.disable()
        own_cpu = time.process_time() - own_before
        box_after = busy_snapshot()
        box_busy = 1.0 - (box_after[1] - box_before[1]) / max(1, box_after[0] - box_before[0])
        survivors = [p for p in procs if p is not victim]
        workers_cpu = sum(cpu_seconds(p.pid) for p in survivors) - sum(
            before for p, before in zip(procs, cpu_before, strict=True) if p is not victim
        )
        stats = node.statistics()["tasks"]
        marks = [len(p.records) for p in survivors]
        await stop_processes([p.process for p in survivors])
        worker_stats = [
            await p.wait_for("stats", mark) for p, mark in zip(survivors, marks, strict=True)
        ]
    row: dict[str, Any] = {
        "workload": workload.name,
        "workers": workers,
        "tasks": count,
        "makespan_s": makespan,
        "tasks_per_s": count / makespan,
        "load1": load1,
        "busy_before": busy,
        "quiet_wait_s": waited,
        "submitter_cpu_us_per_task": own_cpu / count * 1e6,
        "workers_cpu_us_per_task": workers_cpu / count * 1e6,
        # Share of all CPUs busy during the run (any process): near 1, the run was
        # limited by CPU, and overhead CPU (ours or anyone's) costs makespan directly.
        "box_busy": box_busy,
    }
    trips = [t for w in worker_stats for t in w["round_trips"]]
    row["trips"] = trips
    row["steals"] = len(trips)
    row["steal_p50_ms"] = percentile(trips, 0.5) * 1e3 if trips else None
    row["steal_p99_ms"] = percentile(trips, 0.99) * 1e3 if trips else None
    executions = sum(w["executed"] for w in worker_stats)
    row["requeued"] = stats["requeued"] - stats_before["requeued"]
    row["duplicates"] = stats["duplicates"] - stats_before["duplicates"]
    # Every value delivered exactly once, and correct.
    row["exactly_once"] = sorted(results) == list(range(count)) and all(
        len(v) == 1 for v in results.values()
    )
    pids_used = set()
    if workload.name == "W3":
        row["correct"] = all(v == [i] for i, v in results.items())
        row["re_executions"] = executions - count
    else:
        row["correct"] = row["exactly_once"]
        busy_time = 0.0
        for values in results.values():
            pids_used.add(int(values[0][1]))
            busy_time += values[0][3] - values[0][2]
        row["workers_used"] = len(pids_used)
        row.update(idle_gaps(results, started, started + makespan))
        # Share of the workers' time spent inside tasks (sleep overshoot included): how
        # well the load was spread, apart from how long each task really took.
        row["utilization"] = busy_time / (workers * makespan)
        if workload.name == "W1":
            row["sleep_overshoot_ms"] = (busy_time - (workload.work or 0.0)) / count * 1e3
        if workload.name == "W1":
            ideal = (workload.work or 0.0) / workers
        else:
            cores = os.cpu_count() or 1
            work = sum(float(v[0][4]) for v in results.values())
            ideal = work / min(workers, cores)
            row["work_s"] = work
        row["ideal_s"] = ideal
        row["efficiency"] = ideal / makespan
        if victim is None:
            row["re_executions"] = executions - count
        else:
            # The victim's count died with it: count what it delivered instead.
            delivered = sum(1 for v in results.values() if int(v[0][1]) == victim.pid)
            row["re_executions"] = executions + delivered - count
            row["killed_after_s"] = killed_after
            row["ideal_3_s"] = (workload.work or 0.0) / (workers - 1)
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        row["profile"] = out.getvalue()
    return row


# ---------------------------------------------------------------------------- peers


def run_peers(
    python: str, repeats: int, quick: bool, keep: str | None = None
) -> tuple[dict[tuple[str, str, int], Any], str]:
    """Run bench_baselines.py (from a temporary copy) and return its medians."""
    with tempfile.TemporaryDirectory(prefix="peers-") as directory:
        shutil.copy(PEERS / "bench_baselines.py", directory)
        out = Path(directory) / "out"
        command = [
            python,
            str(Path(directory) / "bench_baselines.py"),
            "--workers",
            "2,4",
            "--repeats",
            str(repeats),
            "--quiet-max-wait",
            "5",
            "--no-cpu-probe",
            "--out-dir",
            str(out),
        ]
        if quick:
            command += ["--w1-tasks", "500", "--w2-tasks", "50", "--w3-tasks", "5000"]
        say("peers: " + " ".join(command[1:]))
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        summary = json.loads((out / "summary.json").read_text())
        if keep:
            shutil.copytree(out, keep, dirs_exist_ok=True)
    table = {(s["workload"], s["backend"], int(s["workers"])): s for s in summary}
    return table, "measured now (same sitting)"


def stored_peers() -> tuple[dict[tuple[str, str, int], Any], str]:
    """The stored medians of results-2026-11-26/summary.md."""
    table: dict[tuple[str, str, int], Any] = {}
    workload = ""
    headers: list[str] = []
    names = {"makespan s": "makespan_s", "tasks/s": "tasks_per_s", "eff.": "efficiency"}
    for line in STORED_PEERS.read_text().splitlines():
        if match := re.match(r"### (W\d)", line):
            workload = match.group(1)
        elif line.startswith("| backend"):
            headers = [cell.strip() for cell in line.strip("|").split("|")]
        elif line.startswith("| ") and not line.startswith("|---") and headers:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            row = dict(zip(headers, cells, strict=False))
            entry = {names[h]: float(row[h]) for h in names if row.get(h)}
            table[(workload, row["backend"], int(row["W"]))] = entry
    return table, f"STORED figures from {STORED_PEERS} (not re-measured)"


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
    out["trips"] = [t for r in rows for t in r["trips"]]
    if out["trips"]:
        out["steal_p50_ms"] = percentile(out["trips"], 0.5) * 1e3
        out["steal_p99_ms"] = percentile(out["trips"], 0.99) * 1e3
    return out


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(
    cells: dict[tuple[str, int], dict[str, Any]],
    kill: dict[str, Any] | None,
    peers: dict[tuple[str, str, int], Any],
    peers_label: str,
    floor: dict[str, float] | None = None,
) -> list[tuple[str, bool]]:
    verdicts: list[tuple[str, bool]] = []
    print()
    print(f"Peers: {peers_label}")
    for workload in ("W1", "W2", "W3"):
        keys = sorted(k for k in cells if k[0] == workload)
        if not keys:
            continue
        print(f"\n### {workload}")
        print(
            f"{'system':<10} {'W':>2} {'runs':>4} {'makespan s':>10} {'tasks/s':>8} {'eff.':>6}"
            f" {'steal p50/p99 ms':>17} {'re-exec':>7} {'cpu us/task sub+wrk':>20}"
            f" {'load1':>5} {'busy':>5} {'util.':>5} {'overshoot':>9} {'CPUs busy':>9}"
        )
        for key in keys:
            c = cells[key]
            steal = f"{fmt(c['steal_p50_ms'], '.2f')}/{fmt(c['steal_p99_ms'], '.2f')}"
            cpu = f"{c['submitter_cpu_us_per_task']:.0f}+{c['workers_cpu_us_per_task']:.0f}"
            print(
                f"{'meshedge':<10} {c['workers']:>2} {c['runs']:>4} {c['makespan_s']:>10.3f}"
                f" {c['tasks_per_s']:>8.0f} {fmt(c.get('efficiency'), '.3f'):>6} {steal:>17}"
                f" {c['re_executions']:>7.0f} {cpu:>20} {c['load1']:>5.2f} {c['busy_before']:>5.2f}"
                f" {fmt(c.get('utilization'), '.3f'):>5}"
                f" {fmt(c.get('sleep_overshoot_ms'), '.2f'):>6} ms {c['box_busy']:>9.2f}"
            )
            for backend in ("procpool", "dask", "dask-push", "ray"):
                p = peers.get((workload, backend, key[1]))
                if p is None:
                    continue
                print(
                    f"{backend:<10} {key[1]:>2} {fmt(p.get('runs'), '>4')} "
                    f"{fmt(p.get('makespan_s'), '>10.3f')} {fmt(p.get('tasks_per_s'), '>8.0f')}"
                    f" {fmt(p.get('efficiency'), '>6.3f')}"
                )
    if floor is not None:
        print(
            f"\nW1 sleeps with no mesh, one after another ({floor['samples']} of them, fresh"
            f" process): trio.sleep overshoots {floor['trio_overshoot_ms']:.2f} ms each"
            f" (efficiency ceiling {floor['trio_ceiling']:.3f}); time.sleep in a thread"
            f" {floor['thread_overshoot_ms']:.2f} ms (ceiling {floor['thread_ceiling']:.3f})"
        )
    print("\n### Goals")

    def goal(label: str, value: str, ok: bool) -> None:
        verdicts.append((label, ok))
        print(f"{'PASS' if ok else 'MISS'}  {label}: {value}")

    if ("W1", 4) in cells:
        eff = cells[("W1", 4)]["efficiency"]
        goal("W1 efficiency >= 0.93 at 4 nodes", f"{eff:.3f}", eff >= 0.93)
    for workers in (2, 4):
        if ("W2", workers) in cells:
            eff = cells[("W2", workers)]["efficiency"]
            goal(f"W2 efficiency >= 0.90 at {workers} nodes", f"{eff:.3f}", eff >= 0.90)
    if ("W3", 2) in cells:
        rate = cells[("W3", 2)]["tasks_per_s"]
        goal("W3 >= 3,000 tasks/s with 2 nodes", f"{rate:,.0f} tasks/s", rate >= 3000)
    trips = [t for c in cells.values() for t in c.get("trips", [])]
    if trips:
        p50, p99 = percentile(trips, 0.5) * 1e3, percentile(trips, 0.99) * 1e3
        goal("steal round trip p50 <= 1 ms (all runs)", f"{p50:.2f} ms (n={len(trips)})", p50 <= 1)
        goal("steal round trip p99 <= 5 ms (all runs)", f"{p99:.2f} ms", p99 <= 5)
    all_once = all(c["exactly_once"] and c["correct"] for c in cells.values())
    if cells:
        goal("every result exactly once and correct (all runs)", str(all_once), all_once)
    if kill is not None:
        bound = kill["ideal_3_s"] / 0.85
        goal(
            "kill: every result exactly once",
            f"{kill['exactly_once']} (requeued {kill['requeued']}, duplicates dropped "
            f"{kill['duplicates']}, re-executions {kill['re_executions']})",
            kill["exactly_once"] and kill["correct"],
        )
        goal(
            "kill: makespan <= ideal(3 survivors) / 0.85",
            f"{kill['makespan_s']:.3f} s vs {bound:.3f} s (ideal(3) {kill['ideal_3_s']:.3f} s;"
            f" killed after {kill['killed_after_s']:.2f} s)",
            kill["makespan_s"] <= bound,
        )
    return verdicts


# ---------------------------------------------------------------------------- main


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
            runs = []
            for repeat in range(args.repeats):
                say(f"{name} on {workers} workers, run {repeat + 1}/{args.repeats} ...")
                row = await run_once(
                    workload, workers, profile=args.profile == name and repeat == 0
                )
                if "profile" in row:
                    print(f"\ncProfile of the submitting node, {name}, {workers} workers:")
                    print(row.pop("profile"))
                say("  " + json.dumps({k: v for k, v in row.items() if k != "trips"}))
                runs.append(row)
            rows += runs
            cell = median_row(runs)
            cells[(name, workers)] = cell
    floor = sleep_floor() if "W1" in only else None
    kill = None
    if "kill" in only:
        say("W1 on 4 workers, one SIGKILLed at half ...")
        kill = await run_once(make_workload("W1", args.quick, 0, args.w1_kind), 4, kill_at=0.5)
        say("  " + json.dumps({k: v for k, v in kill.items() if k != "trips"}))
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
    print(json.dumps(result), flush=True)


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


def main() -> None:
    global QUIET
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        trio.run(worker_main, sys.argv[2], sys.argv[3])
        return
    if sys.argv[1:] == ["--sleep-floor"]:
        trio.run(sleep_floor_main)
        return
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
    args = parser.parse_args()
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
