"""Regression tests of work-stealing bugs found by the multi-process tests and benchmark.

They drive two :class:`WorkStealing` cores directly (no membership, no sockets): an
*origin* that submits and runs nothing, and a *thief* with one slot. Messages are
delivered at once and in order; time moves only when a test says so.
"""

from __future__ import annotations

import os
import random
from typing import Any

import trio
import trio.testing

from meshedge.core.member import Member, MemberState
from meshedge.core.stealing import StealingTiming, Task, WorkStealing
from meshedge.identity import Identity
from meshedge.runtime import NodeConfig, Timing, open_node
from meshedge.runtime.node import SUBMIT_BATCH
from meshedge.runtime.tasks import TaskRegistry
from meshedge.wire.message_types import MessageType


class Pair:
    """An origin (no slots) and a thief (``slots``) that know each other."""

    def __init__(self, slots: int = 1, timing: StealingTiming | None = None) -> None:
        timing = timing or StealingTiming(load_interval=0.04)
        self.origin_id = Identity.generate().node_id
        self.thief_id = Identity.generate().node_id
        self.origin = WorkStealing(
            self.origin_id, slots=0, tags={}, can_run={"job"}, rng=random.Random(1), timing=timing
        )
        self.thief = WorkStealing(
            self.thief_id,
            slots=slots,
            tags={},
            can_run={"job"},
            rng=random.Random(2),
            timing=timing,
        )
        self.cores = {self.origin_id: self.origin, self.thief_id: self.thief}
        self.now = 0.0
        self.running: list[Task] = []
        self.finished: list[Any] = []
        for core, other in ((self.origin, self.thief_id), (self.thief, self.origin_id)):
            core.member_changed(Member(other, ("127.0.0.1", 1), MemberState.ALIVE, 1, 1, {}), 0)
        self.deliver()

    def submit(self) -> bytes:
        task = Task(os.urandom(16), self.origin_id, "job", [], {})
        self.origin.submit(task, self.now)
        self.deliver()
        return task.id

    def deliver(self) -> None:
        """Hand every message to its receiver, until none is left."""
        moved = True
        while moved:
            moved = False
            for sender_id, sender in self.cores.items():
                for peer, msg_type, body, _ in sender.messages_to_send():
                    self.cores[peer].receive(sender_id, msg_type, body, self.now)
                    moved = True
            self.running += self.thief.tasks_to_start()
            while (event := self.origin.next_event()) is not None:
                self.finished.append(event)

    def finish_running(self) -> None:
        """The thief's running tasks return."""
        running, self.running = self.running, []
        for task in running:
            self.thief.task_done(task.id, (True, None), self.now)
        self.deliver()

    def advance(self, seconds: float) -> None:
        """Move time on, running every timer due meanwhile."""
        end = self.now + seconds
        while (due := min(core.get_timer() for core in self.cores.values())) <= end:
            self.now = max(self.now, due)
            for core in self.cores.values():
                if core.get_timer() <= self.now:
                    core.handle_timer(self.now)
            self.deliver()
        self.now = end


def ids(tasks: list[Task]) -> list[bytes]:
    return [task.id for task in tasks]


def test_work_submitted_soon_after_a_steal_emptied_the_queue_is_advertised_at_once() -> None:
    # The steal answer told the thief "0 left"; the origin's last LOAD said 1. A task
    # submitted before the next LOAD was due matched that stale LOAD count, was never
    # advertised, and waited forever (every second task hung in the multi-process tests).
    pair = Pair()
    first = pair.submit()
    assert ids(pair.running) == [first]
    pair.finish_running()
    pair.advance(0.003)  # the result batch goes home
    assert [event.task_id for event in pair.finished] == [first]
    second = pair.submit()  # within load_interval of the last LOAD
    assert ids(pair.running) == [second]
    pair.finish_running()
    pair.advance(1.0)
    assert [event.task_id for event in pair.finished] == [first, second]


async def test_map_lets_the_node_work_while_it_submits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # map() used to submit its whole iterable without a checkpoint: 20,000 tasks held the
    # event loop for seconds, probes went unanswered, peers declared the node dead and
    # dropped its tasks (the benchmark's W3 saw hundreds re-queued after lease expiry).
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


def test_a_thief_does_not_spin_on_a_victim_not_worth_robbing() -> None:
    # After an empty answer the thief backs off that victim; if the victim then has too
    # little to be worth a steal, its expired back-off must not stay the thief's next
    # deadline (a timer already past: the runtime's pump woke again at once, forever).
    thief_id, victim_id = Identity.generate().node_id, Identity.generate().node_id
    thief = WorkStealing(thief_id, slots=1, tags={}, can_run={"job"}, rng=random.Random(3))
    thief.member_changed(Member(victim_id, ("127.0.0.1", 1), MemberState.ALIVE, 1, 1, {}), 0)
    thief.messages_to_send()
    thief.receive(victim_id, MessageType.LOAD, {1: 5, 2: 0}, 0.0)  # worth a steal
    steals = [body for _, kind, body, _ in thief.messages_to_send() if kind == MessageType.STEAL]
    assert len(steals) == 1
    thief.receive(victim_id, MessageType.TASKS, {1: steals[0][1], 2: [], 3: 1}, 0.001)
    later = 1.0  # the back-off is over; one task left there is not worth a steal
    thief.handle_timer(later)
    assert thief.get_timer() > later


def test_short_tasks_are_stolen_in_batches() -> None:
    # A thief used to ask only for what it had used up during the last round trip, so
    # with short tasks it sent a STEAL (and got a signed TASKS) every few tasks; the
    # messages cost more than the work. It now asks for steal_horizon's worth.
    pair = Pair()
    for _ in range(1000):
        pair.submit()
    for _ in range(20_000):
        if len(pair.finished) == 1000:
            break
        pair.advance(0.0001)  # each task takes 0.1 ms
        pair.finish_running()
    assert len(pair.finished) == 1000
    assert pair.thief.stats["steal_requests"] <= 30


def test_results_share_frames_while_busy_and_go_at_once_when_idle() -> None:
    pair = Pair()
    sent: list[MessageType] = []
    thief_messages = pair.thief.messages_to_send

    def counting() -> list[Any]:
        out = thief_messages()
        sent.extend(kind for _, kind, _, _ in out)
        return out

    pair.thief.messages_to_send = counting  # type: ignore[method-assign]
    for _ in range(1000):
        pair.submit()
    while len(pair.finished) < 1000:
        pair.advance(0.001)  # 1 ms tasks
        pair.finish_running()
    # One signed RESULTS per 2 ms-wait used to carry 1-2 results; now about ten.
    assert sent.count(MessageType.RESULTS) <= 150
    # With nothing left to run, a result goes home without waiting.
    pair.submit()
    pair.finish_running()
    assert len(pair.finished) == 1001
