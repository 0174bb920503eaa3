"""Submitting tasks: fresh ids from the core, and a node that keeps working meanwhile."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from meshedge import LocalProtocolError
from meshedge._identity import Identity
from meshedge.core._stealing import TASK_ID_SIZE, WorkStealing
from meshedge.runtime import NodeConfig, Timing, open_node
from meshedge.runtime._node import SUBMIT_BATCH
from meshedge.runtime._tasks import TaskRegistry

ME = Identity.generate().node_id


def core(seed: int) -> WorkStealing:
    return WorkStealing(ME, slots=0, tags={}, can_run={"job"}, rng=random.Random(seed))


def test_new_tasks_get_fresh_ids_from_the_core_rng() -> None:
    stealing = core(7)
    tasks = [stealing.new_task("job", [n], {"k": n}, {"zone": "eu"}) for n in range(1000)]
    assert len({task.id for task in tasks}) == 1000
    assert {len(task.id) for task in tasks} == {TASK_ID_SIZE}
    first = tasks[0]
    assert (first.origin, first.name, first.args, first.kwargs) == (ME, "job", [0], {"k": 0})
    assert first.requires == {"zone": "eu"}
    # The same seed draws the same ids: a simulation replays exactly.
    again = core(7)
    assert [again.new_task("job").id for _ in range(1000)] == [t.id for t in tasks]


def test_a_new_task_needs_no_arguments_and_submits() -> None:
    stealing = core(1)
    task = stealing.new_task("job")
    assert (task.args, task.kwargs, task.requires) == ([], {}, {})
    stealing.submit(task, 0.0)
    assert stealing.pending() == 1 and stealing.holder_of(task.id) == ME
    with pytest.raises(LocalProtocolError, match="fresh id"):
        stealing.submit(task, 0.0)


async def test_map_lets_the_node_work_while_it_submits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # map() yields between slices of its iterable. Without a checkpoint, 20,000 tasks
    # would hold the event loop for seconds: probes go unanswered, peers declare the node
    # dead and drop its tasks, which are re-queued only after their leases run out.
    registry = TaskRegistry()

    @registry.task(name="echo")
    async def echo(value: int) -> int:
        return value

    config = NodeConfig(mesh="map-yields", bind="127.0.0.1:0", timing=Timing.local())
    async with open_node(config, tasks=registry) as node:
        seen: list[int] = []

        async def watch() -> None:
            # Once per scheduler batch, until everything is submitted.
            while not seen or seen[-1] < 500:
                seen.append(node.statistics()["tasks"]["submitted"])
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            results = [value async for value in node.map("echo", range(500))]
    assert results == list(range(500))
    # map() yields after each slice of at most SUBMIT_BATCH tasks (the mock clock never
    # ends a time slice); trio runs a batch's tasks in random order, so between two
    # looks of the watcher map() ran at most twice.
    steps = [b - a for a, b in zip([0, *seen], seen, strict=False)]
    assert len(seen) > 500 // (2 * SUBMIT_BATCH)
    assert max(steps) <= 2 * SUBMIT_BATCH
