"""Two work-stealing cores wired together in memory, for the tests of one concept each.

An *origin* that submits and runs nothing, and a *thief* with ``slots`` slots. Messages
are delivered at once and in order; time moves only when a test says so.
"""

from __future__ import annotations

import random
from typing import Any

from meshedge.core.member import Member, MemberState
from meshedge.core.stealing import (
    Outgoing,
    StealingTiming,
    Task,
    TaskFinished,
    TaskOutcome,
    WorkStealing,
)
from meshedge.identity import Identity, NodeId


def member(node_id: NodeId, state: MemberState = MemberState.ALIVE, incarnation: int = 1) -> Member:
    """A member as membership reports it: no tags, a dummy address."""
    return Member(node_id, ("127.0.0.1", 1), state, 1, incarnation, {})


def deliver_one(receiver: WorkStealing, sender: NodeId, out: Outgoing, now: float) -> None:
    """Hand one outgoing message to its receiver, as the node core would."""
    receiver.receive(sender, out.body.TYPE, out.body, now)


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
        self.finished: list[TaskFinished] = []
        self.origin.member_changed(member(self.thief_id), 0.0)
        self.thief.member_changed(member(self.origin_id), 0.0)
        self.deliver()

    def submit(self) -> bytes:
        """The origin submits one task; returns its id."""
        task = self.origin.new_task("job")
        self.origin.submit(task, self.now)
        self.deliver()
        return task.id

    def deliver(self) -> None:
        """Hand every message to its receiver, until none is left."""
        moved = True
        while moved:
            moved = False
            for sender_id, sender in self.cores.items():
                for out in sender.messages_to_send():
                    deliver_one(self.cores[out.peer], sender_id, out, self.now)
                    moved = True
            self.running += self.thief.tasks_to_start()
            while (event := self.origin.next_event()) is not None:
                self.finished.append(event)

    def finish_running(self, value: Any = None) -> None:
        """The thief's running tasks return ``value``."""
        running, self.running = self.running, []
        for task in running:
            self.thief.task_done(task.id, TaskOutcome.returned(value), self.now)
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
    """The ids of ``tasks``, in order."""
    return [task.id for task in tasks]
