"""Blocking tasks back to back: the core's run-ahead and the runtime's slot threads."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest
import trio

from meshedge._identity import Identity
from meshedge.core._stealing import Task, TaskOutcome, WorkStealing
from meshedge.runtime import NodeConfig, Timing, open_node
from meshedge.runtime._task_runner import SlotThreads
from meshedge.runtime._tasks import TaskRegistry

ME = Identity.generate().node_id


def core(slots: int, run_ahead: set[str] | None) -> WorkStealing:
    return WorkStealing(
        ME,
        slots=slots,
        tags={},
        can_run={"block", "wait"},
        rng=random.Random(1),
        run_ahead=run_ahead,
    )


def task(name: str) -> Task:
    return Task(os.urandom(16), ME, name, [], {}, {})


def test_blocking_tasks_are_lined_up_one_per_slot() -> None:
    stealing = core(2, {"block"})
    for _ in range(6):
        stealing.submit(task("block"), 0.0)
    assert len(stealing.tasks_to_start()) == 4  # two running, two lined up behind them
    assert stealing.running() == 4 and stealing.queued() == 2


def test_without_run_ahead_only_the_slots_start() -> None:
    stealing = core(2, None)
    for _ in range(6):
        stealing.submit(task("block"), 0.0)
    assert len(stealing.tasks_to_start()) == 2


def test_no_run_ahead_past_other_kinds_or_beside_them() -> None:
    # An async task at the head of the queue is never overtaken ...
    stealing = core(1, {"block"})
    for name in ("block", "wait", "block"):
        stealing.submit(task(name), 0.0)
    assert [t.name for t in stealing.tasks_to_start()] == ["block"]
    # ... and nothing runs ahead while an async task holds a slot.
    stealing = core(1, {"block"})
    for name in ("wait", "block", "block"):
        stealing.submit(task(name), 0.0)
    assert [t.name for t in stealing.tasks_to_start()] == ["wait"]


def test_a_lined_up_task_is_timed_from_when_its_slot_freed() -> None:
    stealing = core(1, {"block"})
    for _ in range(3):
        stealing.submit(task("block"), 0.0)
    first, second = stealing.tasks_to_start()
    stealing.task_done(first.id, TaskOutcome.returned(None), 1.0)
    stealing.task_done(second.id, TaskOutcome.returned(None), 2.0)
    # Both took one second; the second was started at 0.0 but began at 1.0.
    assert stealing._task_time == pytest.approx(1.0)


async def test_slot_threads_run_queued_work_in_order_within_their_count() -> None:
    threads = SlotThreads(2)
    lock = threading.Lock()
    active, peak, order = [0], [0], []

    def work(n: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
            order.append(n)
        return n * n

    results: dict[int, int] = {}

    async def one(n: int) -> None:
        results[n] = await threads.run(lambda: work(n))

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(one, n)
    threads.close()
    assert results == {n: n * n for n in range(8)}
    assert peak[0] == 2


async def test_slot_threads_raise_the_task_error_and_skip_cancelled_work() -> None:
    threads = SlotThreads(1)
    release = threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        release.wait(10)
        ran.append("blocker")

    def never() -> None:
        ran.append("never")

    def fails() -> None:
        raise ValueError("bad input")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(threads.run, blocker)
        await trio.testing.wait_all_tasks_blocked()  # the blocker holds the one thread
        with trio.CancelScope() as give_up:

            async def cancel_once_queued() -> None:
                await trio.testing.wait_all_tasks_blocked()
                give_up.cancel()

            nursery.start_soon(cancel_once_queued)
            await threads.run(never)  # queued behind the blocker, then given up
        assert give_up.cancelled_caught
        release.set()
    with pytest.raises(ValueError, match="bad input"):
        await threads.run(fails)
    threads.close()
    assert ran == ["blocker"]


async def test_a_node_never_runs_more_blocking_tasks_than_its_slots() -> None:
    registry = TaskRegistry()
    lock = threading.Lock()
    active, peak = [0], [0]

    @registry.task(name="block")
    def block(seconds: float) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(seconds)
        with lock:
            active[0] -= 1
        return 1

    @registry.task(name="wait")
    async def wait(seconds: float) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        await trio.sleep(seconds)
        with lock:
            active[0] -= 1
        return 2

    config = NodeConfig(mesh="ahead", bind="127.0.0.1:0", timing=Timing.local(), task_slots=2)
    async with open_node(config, tasks=registry) as node:
        calls: list[tuple[str, float]] = [
            ("wait" if n % 3 == 0 else "block", 0.002 * (n % 4)) for n in range(60)
        ]
        got: list[Any] = []
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:

                async def call(name: str, seconds: float) -> None:
                    got.append(await node.submit(name, seconds))

                for name, seconds in calls:
                    nursery.start_soon(call, name, seconds)
    assert sorted(got) == sorted(1 if name == "block" else 2 for name, _ in calls)
    assert peak[0] == 2
