"""This node's own queue and running tasks: what runs here, and what may be given away.

The queue holds tasks in arrival order, oldest first, whatever their origin. A task
*runnable here* has a name registered on this node and requirements this node's tags
satisfy; ``runnable`` counts such tasks in the queue and is kept up to date on every
change, because the driving loop asks for it on every input.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping

from ..._identity import NodeId
from ...wire.bodies import Task
from .messages import encoded_size
from .tasks import requirements_met
from .timing import StealingTiming

__all__ = ["LocalQueue"]


class LocalQueue:
    """The queued and running tasks of one node, and how long its tasks take.

    Args:
        slots: tasks this node runs at once.
        tags: this node's tags.
        can_run: names of the functions registered here.
        run_ahead: names of tasks that may be lined up behind busy slots (see
            :class:`~meshedge.core._stealing.WorkStealing`).
        timing: periods and bounds.
    """

    __slots__ = (
        "ahead",
        "can_run",
        "last_done",
        "run_ahead",
        "runnable",
        "running",
        "slots",
        "started",
        "tags",
        "task_time",
        "tasks",
        "timing",
        "to_cancel",
        "to_start",
    )

    def __init__(
        self,
        slots: int,
        tags: Mapping[str, str],
        can_run: Iterable[str],
        run_ahead: Iterable[str] | None,
        timing: StealingTiming,
    ) -> None:
        self.slots = slots
        self.tags: Mapping[str, str] = dict(tags)
        self.can_run = frozenset(can_run)
        self.run_ahead = frozenset(run_ahead or ())
        self.timing = timing
        self.tasks: deque[Task] = deque()
        self.runnable = 0  # tasks in the queue this node may run
        self.running: dict[bytes, Task] = {}
        self.started: dict[bytes, float] = {}  # running task id -> when it was started
        self.ahead: set[bytes] = set()  # running tasks that were started ahead
        self.last_done = -math.inf  # when a task last finished here
        self.task_time = 0.0  # moving average of how long a task runs here (0: unknown)
        self.to_start: list[Task] = []
        self.to_cancel: list[bytes] = []

    # ------------------------------------------------------------------ who runs what

    def runnable_here(self, task: Task) -> bool:
        """Whether this node may run ``task``."""
        return task.name in self.can_run and requirements_met(task.requires, self.tags)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """This node's tags changed: recount what it may run."""
        self.tags = dict(tags)
        self.recount()

    def recount(self) -> None:
        """Count the queued tasks this node may run (after the queue or tags changed)."""
        self.runnable = sum(1 for task in self.tasks if self.runnable_here(task))

    def surplus(self) -> int:
        """Queued tasks this node will never run itself: all of them without a slot."""
        return len(self.tasks) - self.runnable if self.slots else len(self.tasks)

    # ------------------------------------------------------------------ queueing

    def append(self, task: Task) -> None:
        """Queue ``task`` behind the others."""
        self.tasks.append(task)
        self.runnable += self.runnable_here(task)

    def put_back(self, task: Task) -> None:
        """Queue ``task`` ahead of the others (it waited longest)."""
        self.tasks.appendleft(task)
        self.runnable += self.runnable_here(task)

    def drop(self, task_id: bytes) -> None:
        """Forget ``task_id`` wherever it is here; a running one is cancelled."""
        if task_id in self.running:
            self.stop_running(task_id)
        elif any(task.id == task_id for task in self.tasks):
            self.tasks = deque(task for task in self.tasks if task.id != task_id)
            self.recount()

    def drop_origin(self, origin: NodeId) -> int:
        """Forget every task of ``origin``, queued or running; returns how many."""
        dropped = 0
        orphans = [task for task in self.tasks if task.origin == origin]
        if orphans:
            dropped = len(orphans)
            self.tasks = deque(task for task in self.tasks if task.origin != origin)
            self.recount()
        for task_id, task in list(self.running.items()):
            if task.origin == origin:
                dropped += 1
                self.stop_running(task_id)
        return dropped

    def foreign_ids(self, own_id: NodeId) -> dict[NodeId, list[bytes]]:
        """Ids of the tasks held here (running, then queued) by origin, own ones left out."""
        by_origin: dict[NodeId, list[bytes]] = {}
        for task in [*self.running.values(), *self.tasks]:
            if task.origin != own_id:
                by_origin.setdefault(task.origin, []).append(task.id)
        return by_origin

    # ------------------------------------------------------------------ running

    def fill_slots(self, now: float) -> None:
        """Start the oldest runnable tasks while slots are free, then line up more."""
        if len(self.running) < self.slots and self.runnable:
            skipped: list[Task] = []  # tasks this node may not run keep their place
            while self.runnable and len(self.running) < self.slots:
                task = self.tasks.popleft()
                if self.runnable_here(task):
                    self._start(task, now)
                else:
                    skipped.append(task)
            self.tasks.extendleft(reversed(skipped))
        if self.run_ahead and self.runnable:
            self._run_ahead(now)

    def _start(self, task: Task, now: float) -> None:
        self.runnable -= 1
        self.running[task.id] = task
        self.started[task.id] = now
        self.to_start.append(task)

    def _run_ahead(self, now: float) -> None:
        """Line up the oldest runnable task behind busy slots, if all of it runs ahead.

        Only the queue's oldest task this node may run is considered (no reordering),
        and only while every running task is a run-ahead one too.
        """
        running = self.running
        while self.runnable and self.slots <= len(running) < 2 * self.slots:
            if not all(task.name in self.run_ahead for task in running.values()):
                return
            position = next(i for i, t in enumerate(self.tasks) if self.runnable_here(t))
            task = self.tasks[position]
            if task.name not in self.run_ahead:
                return
            del self.tasks[position]
            self._start(task, now)
            self.ahead.add(task.id)

    def done(self, task_id: bytes, now: float) -> Task | None:
        """A running task finished: forget it and time it; None if it was not running."""
        task = self.running.pop(task_id, None)
        started = self.started.pop(task_id, now)
        if task is None:
            return None  # cancelled meanwhile
        if task_id in self.ahead:
            # It began when a slot freed, not when it was started.
            self.ahead.discard(task_id)
            started = max(started, self.last_done)
        self.last_done = now
        elapsed = now - started
        self.task_time = elapsed if not self.task_time else 0.9 * self.task_time + 0.1 * elapsed
        return task

    def stop_running(self, task_id: bytes) -> None:
        """Forget a running task and have the runtime cancel it."""
        del self.running[task_id]
        self.started.pop(task_id, None)
        self.ahead.discard(task_id)
        self.to_cancel.append(task_id)

    # ------------------------------------------------------------------ demand

    def tasks_in(self, seconds: float) -> int:
        """Tasks the slots finish in ``seconds``, by the measured task time (0 unknown)."""
        if self.task_time <= 0 or seconds <= 0:
            return 0
        return min(math.ceil(self.slots * seconds / self.task_time), self.timing.max_batch)

    def low_water(self, steal_time: float) -> int:
        """Runnable tasks (running or queued) below which this node steals.

        Every slot busy plus ``prefetch`` queued, plus what the slots finish during one
        steal round trip (``steal_time``), so that short tasks never leave a slot idle
        while the next steal is in flight.
        """
        return self.slots + self.timing.prefetch + self.tasks_in(steal_time)

    def shortfall(self, steal_time: float) -> int:
        """How many runnable tasks this node lacks below its low-water mark (0: enough)."""
        if not self.slots:
            return 0
        return max(0, self.low_water(steal_time) - len(self.running) - self.runnable)

    def steal_size(self, steal_time: float) -> int:
        """How many tasks to ask for: up to the low-water mark plus ``steal_horizon``."""
        high = self.low_water(steal_time) + self.tasks_in(self.timing.steal_horizon)
        want = high - len(self.running) - self.runnable
        return max(1, min(want, self.timing.max_batch))

    # ------------------------------------------------------------------ giving away

    def give(self, tags: Mapping[str, str], count: int, balance: int) -> list[Task]:
        """Take up to ``count`` queued tasks a node with ``tags`` may run, oldest first.

        At most ``balance`` of them may be tasks runnable here; the others (tasks this
        node never runs) always go. The tasks stay within one frame's payload budget;
        the scan stops as soon as enough are found.
        """
        given: list[Task] = []
        positions: list[int] = []
        budget = self.timing.max_frame_payload
        for position, task in enumerate(self.tasks):
            if len(given) >= count:
                break
            if task.requires and not requirements_met(task.requires, tags):
                continue
            if self.runnable_here(task):
                if balance <= 0:
                    continue
                balance -= 1
            budget -= encoded_size(task.to_wire())
            if budget < 0 and given:
                break
            given.append(task)
            positions.append(position)
        if given:
            if positions[-1] == len(positions) - 1:  # a prefix: the common case
                for _ in given:
                    self.tasks.popleft()
            else:
                # By position, not id: another copy of a given task (queued again by its
                # origin while the first was on its way) stays, and ``runnable`` with it.
                taken = set(positions)
                self.tasks = deque(t for i, t in enumerate(self.tasks) if i not in taken)
            self.runnable -= sum(1 for task in given if self.runnable_here(task))
        return given
