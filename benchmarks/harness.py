"""What the benchmarks share: node processes, their JSON output, waits, CPU and memory.

A benchmark run as ``.venv/bin/python benchmarks/<name>.py`` has ``benchmarks/`` first
on ``sys.path``, so it imports this module as ``from harness import ...``.

- :func:`process_group` starts processes (``meshedge run --json`` or a benchmark's own
  worker mode) whose standard output is one JSON object per line, and reads them into
  :class:`NodeProcess` records as they arrive; on exit it stops every one by its PID
  (:func:`stop_processes`: SIGCONT and SIGTERM, then SIGKILL after a grace period).
- :func:`wait_until`, :func:`wait_started`, :func:`wait_alive`, :func:`wait_members_alive`:
  bounded waits on that output or on an in-process node.
- ``/proc`` readings: :func:`rss_mib`, :func:`cpu_seconds`, :func:`cpu_pressure`,
  :func:`busy_snapshot`, :func:`busy_fraction`, :func:`wait_for_quiet`.
- :class:`Ticker` and :func:`stall_phases`: the longest event-loop stall while something
  starts, runs and stops.
- :func:`percentile`, :func:`profile_top`, :func:`say`, :func:`unique_mesh`.

Only the public API of meshedge is used. Every address is 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import math
import os
import pstats
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from meshedge.cli.run import json_records

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
#: Seconds any one wait may take before a benchmark gives up on it (by default).
WAIT_LIMIT = 60.0
#: Membership events a ``meshedge run --json`` process prints for a member it sees alive.
ALIVE_EVENTS = frozenset({"joined", "updated", "recovered"})


# ---------------------------------------------------------------------------- small helpers


def say(text: str) -> None:
    """Progress, on standard error (standard output holds the figures)."""
    print(text, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def unique_mesh(prefix: str = "bench", digits: int = 8) -> str:
    """A mesh name no other run uses, so that runs (and other tenants) never mix."""
    return f"{prefix}-{uuid.uuid4().hex[:digits]}"


def profile_top(source: cProfile.Profile | str, count: int) -> str:
    """The top ``count`` functions of a profile (a profiler or a dump file) by own time.

    A dump file is deleted once read; a missing one gives "(no profile written)".
    """
    text = io.StringIO()
    if isinstance(source, str):
        if not Path(source).exists():
            return "(no profile written)"
        pstats.Stats(source, stream=text).sort_stats("tottime").print_stats(count)
        Path(source).unlink()
    else:
        pstats.Stats(source, stream=text).sort_stats("tottime").print_stats(count)
    return text.getvalue()


# ---------------------------------------------------------------------------- /proc


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_pressure() -> str:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "n/a"
    fields = dict(item.split("=") for item in line.split()[1:])
    return f"{float(fields['avg10']):.0f}%"


def busy_snapshot() -> tuple[int, int]:
    """(all CPU ticks, idle + iowait ticks) since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:9]]
    return sum(values), values[3] + values[4]


def busy_between(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Fraction of all CPUs busy (any process) between two :func:`busy_snapshot` calls."""
    return 1.0 - (after[1] - before[1]) / max(1, after[0] - before[0])


async def busy_fraction(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy (any process) over ``seconds``, from /proc/stat."""
    before = busy_snapshot()
    await trio.sleep(seconds)
    return busy_between(before, busy_snapshot())


async def wait_for_quiet(threshold: float, max_wait: float) -> tuple[float, float]:
    """Wait (at most ``max_wait``) until the box is less busy than ``threshold``.

    Returns the busy fraction last seen and the seconds waited.
    """
    started = time.monotonic()
    busy = await busy_fraction(1.0)
    while busy > threshold and time.monotonic() - started < max_wait:
        busy = await busy_fraction(1.0)
    return busy, time.monotonic() - started


# ---------------------------------------------------------------------------- processes


def meshedge_run(*flags: str) -> list[str]:
    """The command line of a ``meshedge run --json`` node process."""
    return [PYTHON, "-m", "meshedge", "run", "--json", *flags]


def loopback_flags(mesh: str, timing: str, *more: str) -> list[str]:
    """``meshedge run`` flags for a node on 127.0.0.1 (any port) in ``mesh``."""
    return ["--mesh", mesh, "--bind", "127.0.0.1:0", "--timing", timing, *more]


@dataclass
class NodeProcess:
    """A process printing JSON records (``meshedge run --json``), and what it printed.

    ``records`` holds ``(trio time of arrival, record)``; a ``{"event": "started", "id":
    ..., "address": ...}`` record sets ``node_id`` and ``address``.
    """

    name: str
    process: trio.Process
    launched: float
    records: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)
    node_id: str = ""
    address: str = ""
    #: True once its standard output ended: no record comes after.
    closed: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for record in json_records(self.process.stdout):
            if record.get("event") == "started":
                self.node_id, self.address = record["id"], record["address"]
            self.records.append((trio.current_time(), record))
            self.notify()
        self.closed = True
        self.notify()

    def notify(self) -> None:
        """Wake whoever waits on ``changed``; the next wait needs the next change."""
        self.changed.set()
        self.changed = trio.Event()

    def view(self) -> dict[str, str]:
        """Node id -> last reported event, for the other members."""
        seen: dict[str, str] = {}
        for _, record in self.records:
            if "id" in record and record.get("event") != "started":
                seen[record["id"]] = record["event"]
        return seen

    def alive_peers(self) -> set[str]:
        return {node_id for node_id, event in self.view().items() if event in ALIVE_EVENTS}

    def first(self, event: str, node_id: str) -> dict[str, Any] | None:
        """The first ``event`` record about ``node_id``, or None."""
        for _, record in self.records:
            if record.get("event") == event and record.get("id") == node_id:
                return record
        return None

    async def wait_for(
        self, event: str, after: int = 0, limit: float = WAIT_LIMIT
    ) -> dict[str, Any]:
        """The first ``event`` record from index ``after`` on; raises if the output ends."""
        with trio.fail_after(limit):
            while True:
                for _, record in self.records[after:]:
                    if record.get("event") == event:
                        return record
                if self.closed:
                    raise RuntimeError(f"process {self.pid} exited ({self.process.returncode})")
                await self.changed.wait()


#: ``launch(name, command, quiet=True)``: start a process of a :func:`process_group`.
Launch = Callable[..., Awaitable[NodeProcess]]


@contextlib.asynccontextmanager
async def process_group(grace: float = 10.0) -> AsyncIterator[Launch]:
    """Yield ``launch(name, command, quiet=True)``, which starts a :class:`NodeProcess`.

    ``quiet`` sends the process's standard error to /dev/null (else it is inherited).
    On exit every process started is stopped by its PID (:func:`stop_processes`).
    """
    started: list[NodeProcess] = []
    async with trio.open_nursery() as nursery:

        async def launch(name: str, command: Sequence[str], quiet: bool = True) -> NodeProcess:
            launched = trio.current_time()
            process = await trio.lowlevel.open_process(
                list(command),
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL if quiet else None,
                cwd=ROOT,
            )
            proc = NodeProcess(name, process, launched)
            started.append(proc)
            nursery.start_soon(proc.read)
            return proc

        try:
            yield launch
        finally:
            with trio.CancelScope(shield=True):
                await stop_processes([p.process for p in started], grace)
            nursery.cancel_scope.cancel()


async def stop_processes(processes: Sequence[trio.Process], grace: float = 10.0) -> None:
    """SIGCONT and SIGTERM each live process by its PID; SIGKILL it after ``grace`` s."""
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)  # a stopped one cannot handle SIGTERM
                process.send_signal(signal.SIGTERM)
    with trio.move_on_after(grace):
        for process in processes:
            await process.wait()
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


# ---------------------------------------------------------------------------- waits


async def wait_until(
    condition: Callable[[], bool], procs: Sequence[NodeProcess], limit: float = WAIT_LIMIT
) -> None:
    """Wait (bounded by ``limit``) until ``condition()`` holds after some output."""
    with trio.fail_after(limit):
        while not condition():
            with trio.move_on_after(0.05):
                # Wake on any process's output; poll as well, since events are replaced.
                events = [p.changed for p in procs]
                async with trio.open_nursery() as nursery:
                    for event in events:

                        async def wait_one(event: trio.Event = event) -> None:
                            await event.wait()
                            nursery.cancel_scope.cancel()

                        nursery.start_soon(wait_one)


async def wait_started(procs: Sequence[NodeProcess], limit: float = WAIT_LIMIT) -> None:
    """Wait until every process printed its 'started' record."""
    await wait_until(lambda: all(p.node_id for p in procs), procs, limit)


async def wait_alive(node: Any, peer: Any, limit: float = WAIT_LIMIT) -> None:
    """Wait (bounded) until the in-process ``node`` sees the member ``peer`` alive."""
    from meshedge.runtime import MemberState

    def alive() -> bool:
        member = node.member(peer)
        return member is not None and member.state == MemberState.ALIVE

    with trio.fail_after(limit):
        if alive():
            return
        async for _ in node.events():
            if alive():
                return


async def wait_members_alive(node: Any, ids: Collection[str], limit: float = WAIT_LIMIT) -> None:
    """Wait (bounded, polling) until ``node.members()`` has every id in ``ids`` alive."""
    from meshedge.runtime import MemberState

    with trio.fail_after(limit):
        while True:
            alive = {str(m.id) for m in node.members() if m.state == MemberState.ALIVE}
            if set(ids) <= alive:
                return
            await trio.sleep(0.02)


# ---------------------------------------------------------------------------- loop stalls

#: The tick interval; a gap is measured as the time between two ticks minus this.
TICK = 0.001


class Ticker:
    """A task that sleeps TICK at a time and keeps the longest gap between two ticks."""

    def __init__(self) -> None:
        self.longest = 0.0

    def reset(self) -> float:
        """The longest gap since the last reset (seconds); start again from 0."""
        longest, self.longest = self.longest, 0.0
        return longest

    async def run(self) -> None:
        last = trio.current_time()
        while True:
            await trio.sleep(TICK)
            now = trio.current_time()
            self.longest = max(self.longest, now - last - TICK)
            last = now


async def stall_phases(
    ticker: Ticker,
    subject: AbstractAsyncContextManager[Any],
    ready: Callable[[Any], Awaitable[None]],
    ready_key: str,
) -> dict[str, float]:
    """Enter ``subject``, await ``ready(it)``, leave: the time and longest gap of each.

    Keys: ``start_s`` / ``start_gap_ms`` (entry), ``ready_key`` / ``running_gap_ms``
    (until ready, from the start), ``stop_s`` / ``stop_gap_ms`` (exit).
    """
    result: dict[str, float] = {}
    ticker.reset()
    started = trio.current_time()
    async with subject as entered:
        result["start_s"] = trio.current_time() - started
        result["start_gap_ms"] = 1000 * ticker.reset()
        await ready(entered)
        result[ready_key] = trio.current_time() - started
        result["running_gap_ms"] = 1000 * ticker.reset()
        stopping = trio.current_time()
    result["stop_s"] = trio.current_time() - stopping
    result["stop_gap_ms"] = 1000 * ticker.reset()
    return result
