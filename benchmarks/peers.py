"""Peer baselines for the work-stealing benchmark: ProcessPool, Dask and Ray on W1-W3.

``benchmarks/stealing.py --peers-python PYTHON`` runs this script with ``PYTHON`` (a
separate venv, e.g. ``python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip
install "dask[distributed]" ray``), so that the peers are measured in the same sitting
as meshedge, on the same workloads (defined here and imported by stealing.py):

- W1: 2,000 tasks of ``time.sleep(U(1, 20) ms)`` (seed 12345), ideal = sum / W;
- W2: 200 tasks of a ~20 ms pure-Python loop (calibrated at start), ideal = sum of
  each task's ``thread_time`` / min(W, cores), measured in the run;
- W3: 20,000 no-ops: the per-task overhead of submit -> run -> result.

Backends (each skipped, with a note, when its package is not importable):

- ``procpool``: ``concurrent.futures.ProcessPoolExecutor(max_workers=W)`` (forkserver);
- ``dask``: ``LocalCluster(processes=True, n_workers=W, threads_per_worker=1,
  host="127.0.0.1")``, default scheduling (queuing, work stealing on);
- ``dask-push``: the same with ``worker-saturation=inf``: every task goes to a worker
  when submitted and dask's work stealing rebalances;
- ``ray``: ``ray.init(num_cpus=W, _node_ip_address="127.0.0.1")`` with
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (else Ray swaps 127.0.0.1 for a routable
  address) and usage statistics off.

Makespan runs from the first submit until the client holds every result; executor
start-up and a warm-up batch are excluded, and every repeat starts a fresh executor.
Each (backend, workers, workload) cell runs in a child process of its own session,
killed as a group (by its PID) on ``--cell-timeout``. Before each cell it waits (at
most ``--quiet-max-wait`` s) until the box is less busy than ``--quiet-threshold``.
Everything stays on 127.0.0.1.

This file imports only the standard library at the top (the peers' Python need not
have meshedge); the backends import their packages when they start.

    PYTHON benchmarks/peers.py [--quick] [--workers 2,4] [--repeats 1]
        [--backends procpool,dask,dask-push,ray] [--json summary.json] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BACKENDS = ("procpool", "dask", "dask-push", "ray")
WORKLOADS = ("W1", "W2", "W3")
#: Tasks per workload, full and with --quick.
SIZES = {"W1": 2_000, "W2": 200, "W3": 20_000}
QUICK_SIZES = {"W1": 500, "W2": 50, "W3": 5_000}
#: The package each backend needs.
PACKAGES = {"procpool": "concurrent", "dask": "distributed", "dask-push": "distributed"}
PACKAGES["ray"] = "ray"
#: Ray rewrites 127.0.0.1 to a routable address unless the cluster mode is off; read at
#: import time, so set before ``import ray`` (and in every child).
RAY_LOOPBACK_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


# ---------------------------------------------------------------------------- workloads


def w1_durations(count: int, seed: int = 12345) -> list[float]:
    """W1's sleeps: ``count`` seconds drawn from U(1, 20) ms."""
    rng = random.Random(seed)
    return [rng.uniform(1.0, 20.0) / 1000.0 for _ in range(count)]


def spin(iterations: int) -> int:
    """W2's CPU loop."""
    x = 0
    for i in range(iterations):
        x = (x * 1103515245 + i) & 0xFFFFFFFF
    return x


def calibrate_cpu(target_ms: float) -> int:
    """Iterations of ``spin`` that take ``target_ms`` here."""
    probe = 200_000
    spin(probe)

    def timed(iterations: int) -> float:
        started = time.perf_counter()
        spin(iterations)
        return time.perf_counter() - started

    per_iteration = statistics.median(timed(probe) for _ in range(5)) / probe
    return max(1, round(target_ms / 1000.0 / per_iteration))


def task_sleep(seconds: float) -> tuple[int, float, float]:
    """W1: a blocking sleep; (pid, start, end) in perf_counter time."""
    started = time.perf_counter()
    time.sleep(seconds)
    return os.getpid(), started, time.perf_counter()


def task_cpu(iterations: int) -> tuple[int, float, float, float]:
    """W2: spin; (pid, start, end, CPU seconds of this thread)."""
    cpu = time.thread_time()
    started = time.perf_counter()
    spin(iterations)
    return os.getpid(), started, time.perf_counter(), time.thread_time() - cpu


def task_noop(index: int) -> int:
    """W3: nothing."""
    return index


# ---------------------------------------------------------------------------- backends


class ProcPool:
    def start(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("forkserver")
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=context)

    def run(self, function: Callable[..., Any], arguments: Sequence[Any]) -> list[Any]:
        futures = [self.executor.submit(function, a) for a in arguments]
        return [f.result() for f in futures]

    def stop(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class Dask:
    def __init__(self, push: bool) -> None:
        self.push = push

    def start(self, workers: int) -> None:
        import logging

        import dask
        from distributed import Client, LocalCluster

        config: dict[str, Any] = {"distributed.scheduler.work-stealing": True}
        if self.push:
            config["distributed.scheduler.worker-saturation"] = float("inf")
        dask.config.set(config)
        self.cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(workers)

    def run(self, function: Callable[..., Any], arguments: Sequence[Any]) -> list[Any]:
        futures = self.client.map(function, list(arguments), pure=False)
        return list(self.client.gather(futures))

    def stop(self) -> None:
        self.client.close()
        self.cluster.close()


class Ray:
    def start(self, workers: int) -> None:
        os.environ.update(RAY_LOOPBACK_ENV)
        import ray

        self.ray = ray
        self.remote: dict[Any, Any] = {}
        self.temp = tempfile.mkdtemp(prefix="ray-")
        ray.init(
            num_cpus=workers,
            num_gpus=0,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            logging_level="ERROR",
            object_store_memory=256 * 1024 * 1024,
            _temp_dir=self.temp,
        )

    def run(self, function: Callable[..., Any], arguments: Sequence[Any]) -> list[Any]:
        if function not in self.remote:
            self.remote[function] = self.ray.remote(num_cpus=1)(function)
        remote = self.remote[function]
        return list(self.ray.get([remote.remote(a) for a in arguments]))

    def stop(self) -> None:
        self.ray.shutdown()


def make_backend(name: str) -> Any:
    if name == "procpool":
        return ProcPool()
    if name in ("dask", "dask-push"):
        return Dask(push=name == "dask-push")
    return Ray()


def available(name: str) -> bool:
    """Whether this Python can import what ``name`` needs."""
    return importlib.util.find_spec(PACKAGES[name]) is not None


# ---------------------------------------------------------------------------- one cell


def cell_work(
    workload: str, count: int, cpu_iterations: int
) -> tuple[Callable[..., Any], list[Any]]:
    """The task function and its arguments of one workload (functions of ``peers``)."""
    import peers  # by module name, so that every backend pickles tasks by reference

    if workload == "W1":
        return peers.task_sleep, w1_durations(count)
    if workload == "W2":
        return peers.task_cpu, [cpu_iterations] * count
    return peers.task_noop, list(range(count))


def warm_up(backend: Any, workers: int) -> None:
    """Every worker process exists and has imported the task module."""
    import peers

    backend.run(peers.task_sleep, [0.05] * (2 * workers))
    backend.run(peers.task_noop, list(range(20 * workers)))
    backend.run(peers.task_cpu, [1000] * (2 * workers))


def ideal_seconds(workload: str, results: list[Any], arguments: list[Any], workers: int) -> float:
    """W1: the sleeps / W; W2: the tasks' thread CPU / min(W, cores)."""
    if workload == "W1":
        return sum(arguments) / workers
    return sum(r[3] for r in results) / min(workers, os.cpu_count() or 1)


def run_repeat(
    name: str, workers: int, workload: str, work: tuple[Any, list[Any]]
) -> dict[str, Any]:
    """One run on a fresh executor: start, warm up, then the timed workload."""
    function, arguments = work
    started = time.perf_counter()
    backend = make_backend(name)
    backend.start(workers)
    try:
        warm_up(backend, workers)
        startup = time.perf_counter() - started
        load1 = os.getloadavg()[0]
        submitted = time.perf_counter()
        results = backend.run(function, arguments)
        makespan = time.perf_counter() - submitted
    finally:
        backend.stop()
    assert len(results) == len(arguments)
    row: dict[str, Any] = {"backend": name, "workers": workers, "workload": workload}
    row.update(tasks=len(arguments), makespan_s=makespan, tasks_per_s=len(arguments) / makespan)
    row.update(startup_s=startup, load1=load1)
    if workload != "W3":
        row["ideal_s"] = ideal_seconds(workload, results, arguments, workers)
        row["efficiency"] = row["ideal_s"] / makespan
    return row


def cell_main(args: argparse.Namespace) -> None:
    """In a child: every repeat of one cell, a JSON line each."""
    os.environ.update(RAY_LOOPBACK_ENV)
    name, workers, workload = args.cell[0], int(args.cell[1]), args.cell[2]
    sizes = QUICK_SIZES if args.quick else SIZES
    work = cell_work(workload, sizes[workload], args.cpu_iters)
    for _ in range(args.repeats):
        print(json.dumps(run_repeat(name, workers, workload, work)), flush=True)


# ---------------------------------------------------------------------------- driver


def cpu_busy(seconds: float) -> float:
    """Fraction of all CPUs busy (any process) over ``seconds``, from /proc/stat."""

    def snapshot() -> tuple[int, int]:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        return sum(values), values[3] + values[4]

    total0, idle0 = snapshot()
    time.sleep(seconds)
    total1, idle1 = snapshot()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def quiet_before_cell(threshold: float, max_wait: float) -> float:
    """Wait (at most ``max_wait`` s) until the box is less busy than ``threshold``."""
    started = time.monotonic()
    busy = cpu_busy(1.0)
    while busy > threshold and time.monotonic() - started < max_wait:
        busy = cpu_busy(1.0)
    return busy


def run_cell(
    args: argparse.Namespace, cell: tuple[str, int, str], log: Any
) -> list[dict[str, Any]]:
    """Run one cell in a child process (own session); its JSON rows."""
    command = [sys.executable, str(Path(__file__).resolve()), "--cell", *map(str, cell)]
    command += ["--repeats", str(args.repeats), "--cpu-iters", str(args.cpu_iters)]
    command += ["--quick"] if args.quick else []
    environment = {**os.environ, **RAY_LOOPBACK_ENV}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(HERE), os.environ.get("PYTHONPATH")])
    )
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=environment,
        start_new_session=True,
    )
    try:
        out, _ = child.communicate(timeout=args.cell_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # our own child's process group, by its PID
        out, _ = child.communicate()
        print(f"peers: {' '.join(map(str, cell))} timed out", file=sys.stderr)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per (workload, backend, workers)."""
    cells: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault((row["workload"], row["backend"], row["workers"]), []).append(row)
    summary = []
    for (workload, backend, workers), runs in cells.items():
        entry: dict[str, Any] = {"workload": workload, "backend": backend, "workers": workers}
        entry["runs"] = len(runs)
        for key in ("makespan_s", "tasks_per_s", "efficiency", "ideal_s", "startup_s", "load1"):
            values = [r[key] for r in runs if r.get(key) is not None]
            entry[key] = statistics.median(values) if values else None
        summary.append(entry)
    return summary


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the tasks")
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell (medians)")
    parser.add_argument("--workers", default="2,4", help="worker counts (default 2,4)")
    parser.add_argument("--workloads", default="W1,W2,W3", help="of W1,W2,W3")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="of " + ",".join(BACKENDS))
    parser.add_argument("--quiet-threshold", type=float, default=0.25, help="busy fraction")
    parser.add_argument("--quiet-max-wait", type=float, default=120.0, help="seconds")
    parser.add_argument("--cell-timeout", type=float, default=900.0, help="seconds per cell")
    parser.add_argument("--json", help="write the medians here")
    parser.add_argument("--out-dir", help="keep runs.jsonl, summary.json and stderr.log here")
    parser.add_argument("--cell", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--cpu-iters", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def run_all(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """Every cell of every available backend; the rows of every run."""
    backends = [b for b in args.backends.split(",") if b]
    for name in [b for b in backends if not available(b)]:
        print(f"peers: skip {name} ({PACKAGES[name]} is not importable)", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    with open(out / "stderr.log", "a") as log:
        for workload in args.workloads.split(","):
            for name in [b for b in backends if available(b)]:
                for workers in (int(w) for w in args.workers.split(",")):
                    busy = quiet_before_cell(args.quiet_threshold, args.quiet_max_wait)
                    got = run_cell(args, (name, workers, workload), log)
                    rows += [{**row, "busy_before": busy} for row in got]
                    print(f"peers: {workload} {name} W={workers}: {len(got)} runs", file=sys.stderr)
    return rows


def main() -> None:
    args = parse_arguments()
    if args.cell:
        cell_main(args)
        return
    if "W2" in args.workloads:
        args.cpu_iters = calibrate_cpu(20.0)
    with tempfile.TemporaryDirectory(prefix="peers-") as scratch:
        out = Path(args.out_dir or scratch)
        out.mkdir(parents=True, exist_ok=True)
        rows = run_all(args, out)
        summary = summarize(rows)
        (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    else:
        print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
