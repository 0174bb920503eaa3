"""``Node.map`` when tasks fail, and how the origin counts results it no longer wants.

The runtime tests run real nodes on 127.0.0.1 under pytest-trio's ``autojump_clock``
(see tests/test_runtime.py for why that is sound with loopback sockets); the accounting
tests drive stealing cores on ``meshedge.testing.CoreMesh``, where a test decides when
each task finishes.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from typing import Any

import pytest
import trio
from runtime_helpers import alive_ids, make_config, seed_of, unique_mesh, wait_until
from stealing_helpers import ORIGIN, THIEF, finished, pair, running, submit

from meshedge import Identity
from meshedge.core._config import TaskSetup
from meshedge.core._stealing import StealingTiming, Task, TaskOutcome, WorkStealing, leases
from meshedge.core._stealing.leases import Leases
from meshedge.core._stealing.messages import Outbox
from meshedge.runtime._node import Node, open_node
from meshedge.runtime._tasks import TaskError, TaskRegistry
from meshedge.testing import CoreMesh


@asynccontextmanager
async def open_origin_and_worker(
    registry: TaskRegistry, origin_slots: int, worker_slots: int
) -> AsyncIterator[tuple[Node, Node]]:
    """An origin and a worker that both register ``registry``, each seeing the other."""
    mesh = unique_mesh()
    async with AsyncExitStack() as stack:
        config = make_config(mesh, task_slots=origin_slots)
        origin = await stack.enter_async_context(open_node(config, tasks=registry))
        config = make_config(mesh, seeds=(seed_of(origin),), task_slots=worker_slots)
        worker = await stack.enter_async_context(open_node(config, tasks=registry))
        both = {origin.id, worker.id}
        with trio.fail_after(10):
            await wait_until(lambda: alive_ids(origin) == alive_ids(worker) == both)
        yield origin, worker


def odd_ones_fail(registry: TaskRegistry) -> None:
    """Register "job": odd numbers raise at once; even ones return their square only
    after all three odd ones of ``range(6)`` have failed (so none may be cancelled)."""
    failures = 0
    all_failed = trio.Event()

    @registry.task(name="job")
    async def job(x: int) -> int:
        nonlocal failures
        if x % 2:
            failures += 1
            if failures == 3:
                all_failed.set()
            raise ValueError(f"odd {x}")
        await all_failed.wait()
        return x * x


async def test_return_exceptions_yields_every_result_or_error_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = TaskRegistry()
    odd_ones_fail(registry)
    async with open_origin_and_worker(registry, 0, 6) as (origin, worker):
        with trio.fail_after(10):
            outcomes = [
                value async for value in origin.map("job", range(6), return_exceptions=True)
            ]
        assert outcomes[::2] == [0, 4, 16]
        errors = outcomes[1::2]
        assert all(isinstance(error, TaskError) for error in errors)
        assert [(e.type_name, e.message, e.ran_on) for e in errors] == [
            ("ValueError", f"odd {x}", worker.id) for x in (1, 3, 5)
        ]
        tasks = origin.statistics()["tasks"]
        assert tasks["submitted"] == tasks["completed"] == 6  # every item ran to its end
        assert tasks["late_results"] == tasks["duplicates"] == 0
        assert worker.statistics()["tasks"]["stolen"] == 6


async def test_return_exceptions_unordered_yields_errors_as_they_come(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = TaskRegistry()
    odd_ones_fail(registry)
    async with open_origin_and_worker(registry, 0, 6) as (origin, _):
        mapped = origin.map("job", range(6), ordered=False, return_exceptions=True)
        with trio.fail_after(10):
            async with aclosing(mapped) as results:  # type: ignore[type-var]
                outcomes: list[Any] = [value async for value in results]
        # The three failures come first: the even tasks wait for them, still running.
        assert all(isinstance(error, TaskError) for error in outcomes[:3])
        assert sorted(error.message for error in outcomes[:3]) == ["odd 1", "odd 3", "odd 5"]
        assert sorted(outcomes[3:]) == [0, 4, 16]
        assert origin.statistics()["tasks"]["completed"] == 6


async def test_a_failure_stops_a_default_map_and_late_results_are_not_duplicates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = TaskRegistry()
    may_fail = trio.Event()
    hold_cancelled = trio.Event()
    started: list[str] = []

    @registry.task(name="job")
    async def job(kind: str) -> str:
        started.append(kind)
        if kind == "fail":
            await may_fail.wait()
            raise ValueError("first failure")
        if kind == "hold":
            try:
                await trio.sleep_forever()
            finally:
                hold_cancelled.set()
        may_fail.set()  # "ok": returns while "hold" runs, so its result waits in a batch
        return kind

    # The origin's one slot runs "fail" (the first submitted); it gives the worker one
    # task at a time while it would run the rest itself, so the worker takes "hold" and
    # then "ok"; "spare" stays at the origin until its slot frees.
    async with open_origin_and_worker(registry, 1, 2) as (origin, _):
        with trio.fail_after(10), pytest.raises(TaskError) as caught:
            async for _ in origin.map("job", ["fail", "hold", "ok", "spare"]):
                pytest.fail("the first result is the failure")
        assert (caught.value.type_name, caught.value.ran_on) == ("ValueError", origin.id)
        with trio.fail_after(10):
            await hold_cancelled.wait()  # cancelled where it ran
            await wait_until(lambda: origin.statistics()["tasks"]["late_results"] == 1)
        tasks = origin.statistics()["tasks"]
        # "ok" reported after the map had cancelled it: a late result, not a duplicate.
        # ("spare" may have finished first: the slot "fail" freed starts it at once.)
        assert tasks["completed"] == 1 + started.count("spare")
        assert (tasks["duplicates"], tasks["pending"]) == (0, 0)


# -- the stealing core's accounting -------------------------------------------------


def origin_of(mesh: CoreMesh) -> WorkStealing:
    core = mesh.cores[ORIGIN].stealing
    assert core is not None
    return core


def test_a_result_of_a_cancelled_task_counts_as_late() -> None:
    mesh = pair(slots=2)
    first, second = submit(mesh), submit(mesh)
    mesh.run_until(lambda: len(running(mesh)) == 2, timeout=1)
    assert {task.id for task in running(mesh)} == {first, second}
    # "first" finishes at once (a short task): its result waits in a batch while
    # "second" runs, and the origin cancels it meanwhile.
    mesh.finish_task(THIEF, first, TaskOutcome.returned("late"))
    mesh.cancel(ORIGIN, first)
    mesh.advance(0.1)
    mesh.finish_task(THIEF, second, TaskOutcome.returned("kept"))
    mesh.advance(0.1)
    assert [event.task_id for event in finished(mesh)] == [second]
    stats = origin_of(mesh).statistics()
    assert (stats["completed"], stats["late_results"], stats["duplicates"]) == (1, 1, 0)


def test_a_second_result_after_a_lease_ran_out_is_a_duplicate() -> None:
    timing = StealingTiming(load_interval=0.04, lease_timeout=3.0)
    setups = [TaskSetup(can_run=frozenset({"job"}), slots=n, timing=timing) for n in (0, 1, 1)]
    mesh = CoreMesh(3, prejoined=True, tasks=setups, run_task=lambda index, task: None)
    task = mesh.submit(0, "job")
    mesh.advance(timing.load_interval)
    holder = 1 if task.id in mesh.running[1] else 2
    other = 3 - holder
    holder_core = mesh.cores[holder].stealing
    assert holder_core is not None
    # The holder's renewals are lost: the origin queues the task again, and the other
    # node runs it too.
    mesh.advance(timing.lease_timeout / 2)
    for _ in range(3):
        holder_core.handle_timer(mesh.now + timing.lease_timeout)
        holder_core.messages_to_send()
    origin = origin_of(mesh)
    origin.handle_timer(mesh.now + timing.lease_timeout + 0.01)
    assert origin.statistics()["requeued"] == 1
    mesh.run_until(lambda: task.id in mesh.running[other], timeout=5)
    mesh.finish_task(other, task.id, TaskOutcome.returned("first"))
    mesh.advance(0.1)
    mesh.finish_task(holder, task.id, TaskOutcome.returned("second"))
    mesh.advance(0.1)
    assert [event.value for event in finished(mesh)] == ["first"]
    stats = origin.statistics()
    # (The holder may also have stolen the queued copy, and lost that lease too: the
    # task is then re-queued twice; either way, the "second" result is one too many.)
    assert stats["requeued"] >= 1
    assert (stats["completed"], stats["duplicates"], stats["late_results"]) == (1, 1, 0)


def test_the_origin_remembers_a_bounded_number_of_cancelled_tasks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leases, "CANCELLED_REMEMBERED", 2)
    book = Leases(StealingTiming(), Outbox(), {"requeued": 0})
    origin, holder = Identity.generate().node_id, Identity.generate().node_id
    rng = random.Random(7)
    tasks = [Task(rng.randbytes(16), origin, "job", [], {}, {}) for _ in range(4)]
    for task in tasks:
        book.add(task)
    for task in tasks[:3]:  # held elsewhere: a copy may still report
        book.lease(task.id, book.entries[task.id], holder, 0.0)
    for task in tasks:
        assert book.cancel(task.id) is not None
    assert book.cancel(tasks[0].id) is None  # not in the book any more
    # The oldest is forgotten; the last never left this node, so it cannot report.
    assert [book.was_cancelled(task.id) for task in tasks] == [False, True, True, False]
