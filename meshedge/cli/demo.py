"""``meshedge demo``: a local mesh of real node processes, on 127.0.0.1 only.

It starts N ``meshedge run`` processes that find each other by mDNS bound to
127.0.0.1 (no seeds), shows the mesh forming, SIGKILLs one and shows the others
detect it, restarts it with the same identity and shows it rejoin. Then the demo's own
node joins and submits an uneven job — a Mandelbrot image in tiles — that the worker
nodes steal from it; one worker is SIGKILLed halfway and its tiles run again elsewhere.
The image is written as a PNG to ``--image`` (by default into a new temporary
directory, never the working directory) and its path printed; a summary prints the
tasks per node, re-executions and efficiency against the ideal. Exits 0, or 1 if a
phase did not complete in time or Ctrl-C/SIGTERM stopped the demo (it stops its node
processes first).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ._signals import STOP_SIGNALS, StopSignals

if TYPE_CHECKING:
    from ..runtime._node import Node

__all__ = ["add_demo_arguments", "demo_command"]

#: Seconds each phase may take before the demo gives up (generous for a busy laptop).
PHASE_TIMEOUT = 30.0
_ALIVE_EVENTS = {"joined", "recovered", "updated"}


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``meshedge demo``."""
    parser.add_argument("--nodes", type=int, default=4, help="node processes (default 4)")
    parser.add_argument(
        "--timing",
        choices=("local", "lan"),
        default="local",
        help="protocol timing preset of the nodes (default: local)",
    )
    parser.add_argument(
        "--image",
        metavar="PATH",
        default=None,
        help="where to write the rendered PNG (default: meshedge-demo.png in a new"
        " temporary directory); the demo prints the path",
    )


@dataclass
class _Proc:
    index: int
    identity_path: str
    process: trio.Process | None = None
    node_id: str = ""
    address: str = ""
    # what this node believes of the others: id -> state
    view: dict[str, str] = field(default_factory=dict)
    # when this node first reported each (event, id)
    seen_at: dict[tuple[str, str], float] = field(default_factory=dict)
    started: trio.Event = field(default_factory=trio.Event)


class _Demo:
    def __init__(self, nodes: int, timing: str, directory: str) -> None:
        self.mesh = f"demo-{secrets.token_hex(3)}"
        self.timing = timing
        self.procs = [_Proc(i, os.path.join(directory, f"node{i}.key")) for i in range(nodes)]
        self.changed = trio.Event()
        self.t0 = trio.current_time()

    def command(self, proc: _Proc) -> list[str]:
        return [
            sys.executable,
            "-m",
            "meshedge",
            "run",
            "--mesh",
            self.mesh,
            "--bind",
            "127.0.0.1:0",
            "--mdns",
            "--interface",
            "127.0.0.1",
            "--json",
            "--timing",
            self.timing,
            "--identity",
            proc.identity_path,
            "--tasks",
            "meshedge.cli.demo_tasks:registry",
            "--slots",
            "1",
        ]

    def say(self, text: str) -> None:
        print(f"[{trio.current_time() - self.t0:6.2f}s] {text}", flush=True)

    async def start(self, nursery: trio.Nursery, proc: _Proc) -> None:
        proc.view.clear()
        proc.started = trio.Event()
        proc.process = await trio.lowlevel.open_process(
            self.command(proc), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        nursery.start_soon(self.read, proc, proc.process)
        with trio.fail_after(PHASE_TIMEOUT):
            await proc.started.wait()

    async def read(self, proc: _Proc, process: trio.Process) -> None:
        from .run import json_records

        assert process.stdout is not None
        async for record in json_records(process.stdout):
            self.on_record(proc, record)

    def on_record(self, proc: _Proc, record: dict[str, Any]) -> None:
        event = record.get("event")
        now = trio.current_time()
        if event == "started":
            proc.node_id, proc.address = record["id"], record["address"]
            proc.started.set()
        elif isinstance(event, str) and "id" in record:
            state = "alive" if event in _ALIVE_EVENTS else record.get("state", event)
            proc.view[record["id"]] = state
            proc.seen_at.setdefault((event, record["id"]), now)
        self.changed.set()

    async def wait_for(self, condition: Callable[[], bool], progress: Callable[[], str]) -> None:
        last = ""
        with trio.fail_after(PHASE_TIMEOUT):
            while not condition():
                line = progress()
                if line != last:
                    self.say(line)
                    last = line
                self.changed = trio.Event()
                await self.changed.wait()
        self.say(progress())

    def alive_seen(self, proc: _Proc) -> int:
        ids = {p.node_id for p in self.procs if p is not proc}
        return sum(1 for node_id in ids if proc.view.get(node_id) == "alive")

    def running(self) -> list[_Proc]:
        return [p for p in self.procs if p.process is not None and p.process.returncode is None]


def _short(node_id: str) -> str:
    return node_id[:8]


async def _demo(nodes: int, timing: str, image: str | None, early: StopSignals) -> bool:
    # The receiver spans the whole demo, the stop of its processes included; signals
    # left in it when it closes go to the StopSignals handlers, which only take note.
    with (
        trio.open_signal_receiver(*STOP_SIGNALS) as signals,
        tempfile.TemporaryDirectory(prefix="meshedge-demo-") as directory,
    ):
        if early.seen:
            return False  # stopped before the receiver opened: nothing started yet
        demo = _Demo(nodes, timing, directory)
        print(
            f"meshedge demo: {nodes} node processes on 127.0.0.1, mesh {demo.mesh!r}, "
            f"timing {timing}; discovery by mDNS on 127.0.0.1 only (no seeds)",
            flush=True,
        )
        summary: dict[str, Any] = {}
        completed = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signals, nursery.cancel_scope)
            try:
                await _phases(demo, nursery, summary)
                await _work(demo, summary, image)
                completed = True
            except trio.TooSlowError:
                print("demo: a phase did not complete in time", file=sys.stderr)
            finally:
                await _stop_all(demo)
                nursery.cancel_scope.cancel()
        if not completed:
            return False
        print("\nsummary")
        for name, value in summary.items():
            if isinstance(value, float):
                print(f"  {name:<40} {value:7.2f}")
            else:
                print(f"  {name:<40} {value}")
        return True


async def _stop_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    """At the first stop signal, cancel the demo; its ``finally`` stops the processes."""
    async for _ in signals:
        print("demo: stopped by a signal", file=sys.stderr, flush=True)
        scope.cancel()
        return


async def _phases(demo: _Demo, nursery: trio.Nursery, summary: dict[str, Any]) -> None:
    procs = demo.procs
    others = len(procs) - 1
    # 1. the mesh forms by itself
    start = trio.current_time()
    for proc in procs:
        await demo.start(nursery, proc)
        demo.say(f"node{proc.index} started: {_short(proc.node_id)} on {proc.address}")
    await demo.wait_for(
        lambda: all(demo.alive_seen(p) == others for p in procs),
        lambda: (
            "mesh forming: "
            + ", ".join(f"node{p.index} sees {demo.alive_seen(p)}/{others}" for p in procs)
        ),
    )
    summary["mesh formed (from first start), s"] = trio.current_time() - start
    # 2. one node is killed and the others detect it
    victim = procs[-1]
    assert victim.process is not None
    killed_at = trio.current_time()
    demo.say(f"SIGKILL node{victim.index} ({_short(victim.node_id)}, pid {victim.process.pid})")
    victim.process.send_signal(signal.SIGKILL)
    await victim.process.wait()
    survivors = procs[:-1]

    def detected(p: _Proc) -> bool:
        return p.view.get(victim.node_id) == "dead"

    await demo.wait_for(
        lambda: all(detected(p) for p in survivors),
        lambda: (
            "failure detection: "
            + ", ".join(f"node{p.index}: {p.view.get(victim.node_id, '?')}" for p in survivors)
        ),
    )
    times = [p.seen_at[("failed", victim.node_id)] - killed_at for p in survivors]
    summary["failure detected, first node, s"] = min(times)
    summary["failure detected, every node, s"] = max(times)
    # 3. it restarts with the same identity and rejoins
    restarted_at = trio.current_time()
    await demo.start(nursery, victim)
    demo.say(f"node{victim.index} restarted with the same identity {_short(victim.node_id)}")
    await demo.wait_for(
        lambda: (
            all(p.view.get(victim.node_id) == "alive" for p in survivors)
            and demo.alive_seen(victim) == others
        ),
        lambda: (
            "rejoin: "
            + ", ".join(f"node{p.index}: {p.view.get(victim.node_id, '?')}" for p in survivors)
            + f"; node{victim.index} sees {demo.alive_seen(victim)}/{others}"
        ),
    )
    summary["rejoined after restart, s"] = trio.current_time() - restarted_at


@dataclass
class _Job:
    """The tiles of the demo's job and what became of them."""

    workers: list[_Proc]
    #: The worker SIGKILLed once half of the tiles are in.
    victim: _Proc
    tiles: list[tuple[int, int]]
    #: Tiles computed by each worker (node id -> count).
    done: dict[str, int]
    #: Each tile's pixels, by first row.
    pixels: dict[int, bytes] = field(default_factory=dict)
    #: CPU seconds the workers spent on the tiles that came back.
    seconds: float = 0.0
    #: Seconds from the first submit to the kill, once it happened.
    killed_at: float | None = None

    def progress(self) -> str:
        counts = " ".join(
            f"node{p.index}:{self.done[p.node_id]}"
            + ("(killed)" if p is self.victim and self.killed_at is not None else "")
            for p in self.workers
        )
        return f"tiles {len(self.pixels)}/{len(self.tiles)}  {counts}"


async def _work(demo: _Demo, summary: dict[str, Any], image: str | None) -> None:
    """Phase 4: the demo's node submits the tiles; the workers steal them; one dies."""
    from ..core._timing import Timing
    from ..runtime._config import NodeConfig
    from ..runtime._node import open_node
    from .demo_tasks import HEIGHT, TILE_ROWS, WIDTH, registry, write_png

    workers = demo.procs
    config = NodeConfig(
        mesh=demo.mesh,
        bind="127.0.0.1:0",
        seeds=(workers[0].address,),
        timing=Timing.local() if demo.timing == "local" else Timing.lan(),
        task_slots=0,  # the demo's node only submits; the workers compute
    )
    job = _Job(
        workers=workers,
        victim=workers[1],
        tiles=[(row, TILE_ROWS) for row in range(0, HEIGHT, TILE_ROWS)],
        done={p.node_id: 0 for p in workers},
    )
    async with open_node(config, tasks=registry) as node:
        await _wait_for_workers(node, workers)
        demo.say(
            f"the demo's node joined and submits a {WIDTH}x{HEIGHT} Mandelbrot image "
            f"as {len(job.tiles)} tiles of uneven cost; the {len(workers)} workers steal them"
        )
        start = trio.current_time()
        await _run_tiles(demo, node, job, start)
        makespan = trio.current_time() - start
        stats = node.statistics().get("tasks", {})
    path = _image_path(image)
    write_png(path, WIDTH, HEIGHT, b"".join(job.pixels[row] for row, _ in job.tiles))
    demo.say(f"image written to {path}")
    _summarize_work(summary, job, makespan, int(stats.get("requeued", 0)))
    summary["image"] = path


async def _wait_for_workers(node: Node, workers: list[_Proc]) -> None:
    """Wait until the demo's node sees every worker alive."""
    from ..core._member import MemberState

    worker_ids = {p.node_id for p in workers}

    def all_alive() -> bool:
        alive = {str(m.id) for m in node.members() if m.state == MemberState.ALIVE}
        return worker_ids <= alive

    with trio.fail_after(PHASE_TIMEOUT):
        if not all_alive():
            async for _ in node.events():
                if all_alive():
                    break


async def _run_tiles(demo: _Demo, node: Node, job: _Job, start: float) -> None:
    """Map the tiles over the mesh, showing progress; SIGKILL the victim halfway."""
    by_pid = {p.process.pid: p for p in job.workers if p.process is not None}
    interactive = sys.stdout.isatty()
    last_quarter = -1
    with trio.fail_after(4 * PHASE_TIMEOUT):
        async for result in node.map("demo.mandelbrot_tile", job.tiles, ordered=False):
            job.pixels[result["row"]] = result["pixels"]
            job.seconds += result["seconds"]
            runner = by_pid.get(result["pid"])
            if runner is not None:
                job.done[runner.node_id] += 1
            quarter = 4 * len(job.pixels) // len(job.tiles)
            if interactive:
                print(f"\r{job.progress()}   ", end="", flush=True)
            elif quarter != last_quarter:
                demo.say(job.progress())
                last_quarter = quarter
            if job.killed_at is None and len(job.pixels) >= len(job.tiles) // 2:
                victim = job.victim
                assert victim.process is not None
                victim.process.send_signal(signal.SIGKILL)
                job.killed_at = trio.current_time() - start
                if interactive:
                    print()
                demo.say(
                    f"halfway: SIGKILL node{victim.index} (pid {victim.process.pid}); "
                    "its tiles will run again elsewhere"
                )
    if interactive:
        print()


def _image_path(image: str | None) -> str:
    """``--image`` as an absolute path; without it, a file in a new temporary directory."""
    if image is None:
        image = os.path.join(tempfile.mkdtemp(prefix="meshedge-demo-"), "meshedge-demo.png")
    return os.path.abspath(image)


def _summarize_work(summary: dict[str, Any], job: _Job, makespan: float, requeued: int) -> None:
    cores = os.cpu_count() or 1
    workers = len(job.workers)
    killed = job.killed_at if job.killed_at is not None else makespan
    # Ideal: the tiles' CPU time spread over the usable workers (no more than the CPU
    # cores), with one worker fewer after the kill.
    capacity = min(workers, cores) * killed + min(workers - 1, cores) * (makespan - killed)
    for p in job.workers:
        summary[f"tiles computed by node{p.index}"] = job.done[p.node_id]
    summary["tiles re-executed (holder died)"] = requeued
    summary["job makespan, s"] = makespan
    summary["efficiency vs ideal"] = job.seconds / capacity if capacity > 0 else 0.0


async def _stop_all(demo: _Demo) -> None:
    """SIGTERM our processes (they leave gracefully), then SIGKILL any that linger."""
    with trio.CancelScope(shield=True):
        running = demo.running()
        for proc in running:
            assert proc.process is not None
            proc.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(10):
            for proc in running:
                assert proc.process is not None
                await proc.process.wait()
        for proc in demo.running():
            assert proc.process is not None
            proc.process.kill()
            await proc.process.wait()


def demo_command(args: argparse.Namespace) -> int:
    """Run ``meshedge demo``; returns the exit code."""
    from .._errors import LocalProtocolError

    if not 2 <= args.nodes <= 16:
        raise LocalProtocolError("--nodes must be between 2 and 16")
    if args.image is not None:
        folder = os.path.dirname(os.path.abspath(args.image))
        if not os.path.isdir(folder):
            raise LocalProtocolError(f"--image: {folder} is not a directory")
    early = StopSignals()
    early.install()  # before trio.run, so trio installs no KeyboardInterrupt handler
    try:
        return 0 if trio.run(_demo, args.nodes, args.timing, args.image, early) else 1
    finally:
        early.ignore()
