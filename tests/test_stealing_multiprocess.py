"""Work stealing across real node processes on 127.0.0.1 (issue 5).

Worker nodes are ``python -m meshedge run --tasks stealing_tasks:registry --slots 1``
processes, exactly as a user starts them; the submitting node runs in the test process
(``open_node`` with the same registry and no slots of its own, so every task runs in a
worker process and reports that process's pid).

Network rule of this project: everything binds 127.0.0.1:0, mDNS is off. Every process
started here is stopped by its PID when its fixture ends (SIGTERM, then SIGKILL).

Clock: real time (the workers are other processes). Every wait is a condition under
``trio.fail_after``; nothing sleeps to let things settle.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from stealing_tasks import expected, registry

from meshedge.runtime import MemberState, NodeConfig, Timing, open_node
from meshedge.runtime._node import Node
from meshedge.runtime._tasks import TaskError

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
#: Longest wait for any one condition (process start-up on a loaded 2-core box is slow).
WAIT = 30.0

pytestmark = pytest.mark.slow


@dataclass
class Worker:
    """A ``meshedge run`` process and what it printed when it started."""

    process: subprocess.Popen[bytes]
    output: Path
    tags: Mapping[str, str]
    node_id: str = ""
    address: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid


def _launch(mesh: str, output: Path, tags: Mapping[str, str], seed: str | None) -> Worker:
    command = [
        sys.executable,
        "-m",
        "meshedge",
        "run",
        "--bind",
        "127.0.0.1:0",
        "--no-mdns",
        "--json",
        "--timing",
        "local",
        "--mesh",
        mesh,
        "--tasks",
        "stealing_tasks:registry",
        "--slots",
        "1",
    ]
    for key, value in tags.items():
        command += ["--tag", f"{key}={value}"]
    if seed is not None:
        command += ["--join", seed]
    path = os.pathsep.join(p for p in (str(TESTS), str(REPO), os.environ.get("PYTHONPATH")) if p)
    with output.open("wb") as sink:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": path},
        )
    return Worker(process, output, dict(tags))


def _wait_started(worker: Worker) -> None:
    """Wait (bounded) for the worker's ``started`` record; fail with its output if it died."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for line in worker.output.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "started":
                    worker.node_id, worker.address = record["id"], record["address"]
                    return
        if worker.process.poll() is not None:
            break
        time.sleep(0.02)  # polling a file for a condition, bounded by the deadline
    raise AssertionError(f"worker did not start:\n{worker.output.read_text(errors='replace')}")


def _stop(workers: list[Worker]) -> None:
    """SIGTERM each worker by its PID, then SIGKILL any still running after 10 s."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


@contextmanager
def worker_processes(directory: Path, *tags: Mapping[str, str]) -> Iterator[list[Worker]]:
    """One worker process per tag map; the first is the seed the others join."""
    mesh = f"steal-{uuid.uuid4().hex[:10]}"
    workers: list[Worker] = []
    try:
        workers.append(_launch(mesh, directory / "worker0.out", tags[0], None))
        _wait_started(workers[0])
        for index, worker_tags in enumerate(tags[1:], start=1):
            out = directory / f"worker{index}.out"
            workers.append(_launch(mesh, out, worker_tags, workers[0].address))
        for worker in workers[1:]:
            _wait_started(worker)
        yield workers
    finally:
        _stop(workers)


def _mesh_of(workers: list[Worker]) -> str:
    command = workers[0].process.args
    assert isinstance(command, list)
    return str(command[command.index("--mesh") + 1])


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` every 10 ms until it holds (the caller bounds the wait)."""
    while True:
        if condition():
            return
        await trio.sleep(0.01)


def submitting_node(workers: list[Worker]) -> AbstractAsyncContextManager[Node]:
    """``open_node`` in this process, joined to the workers, with no slots of its own."""
    config = NodeConfig(
        mesh=_mesh_of(workers),
        bind="127.0.0.1:0",
        seeds=(workers[0].address,),
        timing=Timing.local(),
        task_slots=0,
    )
    return open_node(config, tasks=registry)


async def wait_all_alive(node: Node, workers: list[Worker]) -> None:
    ids = {worker.node_id for worker in workers}

    def all_alive() -> bool:
        alive = {str(m.id) for m in node.members() if m.state == MemberState.ALIVE}
        return ids <= alive

    with trio.fail_after(WAIT):
        await wait_until(all_alive)


@pytest.fixture(scope="module")
def tagged_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    """Two workers shared by the tests below: one in zone=eu, one without tags."""
    with worker_processes(tmp_path_factory.mktemp("tagged"), {"zone": "eu"}, {}) as workers:
        yield workers


# -- many tasks, one worker killed -----------------------------------------------------


async def test_300_tasks_with_a_worker_killed_midway_every_result_exactly_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(5)
    durations = [rng.randint(5, 30) for _ in range(300)]
    with worker_processes(tmp_path, {}, {}, {}) as workers:
        pids = {worker.pid for worker in workers}
        async with submitting_node(workers) as node:
            await wait_all_alive(node, workers)
            results: dict[int, list[tuple[int, int]]] = {}
            returned = trio.Event()
            victim: Worker | None = None

            async def one(index: int) -> None:
                value, pid = await node.submit("sleep_echo", index, durations[index])
                results.setdefault(index, []).append((value, pid))
                if len(results) >= 100:
                    returned.set()

            with trio.fail_after(WAIT * 2):
                async with trio.open_nursery() as nursery:
                    for index in range(len(durations)):
                        nursery.start_soon(one, index)
                    await returned.wait()
                    # Kill one that has been running tasks, while it holds some.
                    ran = {pid for runs in results.values() for _, pid in runs}
                    victim = next(w for w in workers if w.pid in ran)
                    victim.process.kill()  # SIGKILL, by its PID
            stats = node.statistics()["tasks"]
        assert victim is not None and victim.process.wait(timeout=WAIT) == -signal.SIGKILL
    # Each submit returned exactly once, with its own correct value.
    assert sorted(results) == list(range(300))
    assert all(len(runs) == 1 for runs in results.values())
    assert all(runs[0][0] == expected(index) for index, runs in results.items())
    # Work spread over the workers: the victim before it died, and both survivors.
    ran_on = {runs[0][1] for runs in results.values()}
    assert ran_on <= pids
    assert ran_on == pids, f"tasks ran on {len(ran_on)} of 3 workers"
    # The victim held tasks when it died: they were queued again and ran elsewhere.
    assert stats["requeued"] >= 1
    assert stats["completed"] == 300 and stats["pending"] == 0


# -- requirements, errors, cancellation ------------------------------------------------


async def test_tasks_that_require_a_tag_run_only_on_the_node_that_has_it(
    tagged_workers: list[Worker],
) -> None:
    eu, plain = tagged_workers
    async with submitting_node(tagged_workers) as node:
        await wait_all_alive(node, tagged_workers)
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                pinned: list[int] = []
                anywhere: list[int] = []

                async def run(into: list[int], requires: dict[str, str] | None) -> None:
                    into.append(await node.submit("where", requires=requires))

                for _ in range(30):
                    nursery.start_soon(run, pinned, {"zone": "eu"})
                    nursery.start_soon(run, anywhere, None)
    assert len(pinned) == 30 and set(pinned) == {eu.pid}
    assert len(anywhere) == 30 and set(anywhere) <= {eu.pid, plain.pid}


async def test_a_task_no_live_node_may_run_waits_until_the_caller_gives_up(
    tagged_workers: list[Worker],
) -> None:
    async with submitting_node(tagged_workers) as node:
        await wait_all_alive(node, tagged_workers)
        with trio.move_on_after(1.5) as waiting:
            await node.submit("where", requires={"zone": "mars"})
        assert waiting.cancelled_caught  # nobody is in zone=mars: it never ran
        stats = node.statistics()["tasks"]
        assert stats["pending"] == 0 and stats["queued"] == 0  # cancelled cleanly
        # The node goes on as before.
        with trio.fail_after(WAIT):
            assert await node.submit("where", requires={"zone": "eu"}) == tagged_workers[0].pid


async def test_a_raising_task_reaches_the_caller_as_task_error_and_later_tasks_succeed(
    tagged_workers: list[Worker],
) -> None:
    async with submitting_node(tagged_workers) as node:
        await wait_all_alive(node, tagged_workers)
        with trio.fail_after(WAIT):
            with pytest.raises(TaskError) as raised:
                await node.submit("fail", "no such sensor: t7")
            assert raised.value.type_name == "ValueError"
            assert raised.value.message == "no such sensor: t7"
            assert str(raised.value.ran_on) in {w.node_id for w in tagged_workers}
            values = [await node.submit("sleep_echo", i, 1) for i in range(5)]
    assert [value for value, _ in values] == [expected(i) for i in range(5)]


async def test_cancelling_the_caller_cancels_the_task_where_it_runs(
    tagged_workers: list[Worker], tmp_path: Path
) -> None:
    marker = tmp_path / "holding"
    async with submitting_node(tagged_workers) as node:
        await wait_all_alive(node, tagged_workers)
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(node.submit, "hold", str(marker))
                await wait_until(marker.exists)  # it runs, in a worker process
                assert int(marker.read_text()) in {w.pid for w in tagged_workers}
                nursery.cancel_scope.cancel()  # the caller gives up
            # The CANCEL reached the worker, which cancelled the task: its finally ran.
            await wait_until(lambda: not marker.exists())
            assert node.statistics()["tasks"]["pending"] == 0
            # The workers are free again.
            value, _ = await node.submit("sleep_echo", 3, 1)
            assert value == expected(3)
