"""Leases: an origin's book of its own tasks, and who holds each of them.

A node holding another origin's task (queued or running) holds a *lease* on it, renewed
every ``lease_timeout / 3`` by a LEASE message to the origin. The origin queues the task
again when the holder is declared dead or the lease runs out, so execution is
at-least-once; the book keeps the task until its first result arrives. It also
remembers the tasks cancelled while a copy was out, so that a result arriving for one
of those later is told apart from a duplicate (a second result of a delivered task).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Final

from ..._identity import NodeId
from ...wire.bodies import Task
from .messages import Outbox
from .timing import StealingTiming

__all__ = ["CANCELLED_REMEMBERED", "Leases", "OriginEntry"]

#: Cancelled own tasks an origin remembers (the most recent ones): a result of an older
#: one counts as a duplicate. Only tasks a copy of which was out count (held elsewhere,
#: or queued again after their holder was lost): a task cancelled here never reports.
CANCELLED_REMEMBERED: Final = 65_536


@dataclass(slots=True)
class OriginEntry:
    """What an origin knows about one of its own tasks."""

    #: The task.
    task: Task
    #: Where it is; None: here (queued or running).
    holder: NodeId | None = None
    #: When the holder's lease runs out (``inf`` while here).
    lease_deadline: float = math.inf
    #: It was queued again here, so a stale copy may still run elsewhere.
    requeued: bool = False


class Leases:
    """The origin's own tasks until their results arrive, and the holder's renewals.

    Args:
        timing: periods and bounds.
        outbox: where LEASE renewals go.
        stats: the core's counters (``requeued``).
    """

    __slots__ = ("_cancelled", "_heap", "_outbox", "_stats", "_timeout", "entries", "renew_at")

    def __init__(self, timing: StealingTiming, outbox: Outbox, stats: dict[str, int]) -> None:
        self._timeout = timing.lease_timeout
        self._outbox = outbox
        self._stats = stats
        #: Own tasks without a result yet, by id, in submission order.
        self.entries: dict[bytes, OriginEntry] = {}
        # (lease deadline, task id) of own tasks held elsewhere; stale entries are
        # skipped when they reach the top.
        self._heap: list[tuple[float, bytes]] = []
        #: When this node next renews its leases on other origins' tasks.
        self.renew_at = math.inf
        # Ids of cancelled own tasks that may still report, oldest first (a dict as an
        # ordered set, at most CANCELLED_REMEMBERED).
        self._cancelled: dict[bytes, None] = {}

    # ------------------------------------------------------------------ origin side

    def add(self, task: Task) -> None:
        """A task submitted here (queued here until stolen)."""
        self.entries[task.id] = OriginEntry(task)

    def cancel(self, task_id: bytes) -> OriginEntry | None:
        """The caller gave up on a task: forget it; None if it was not in the book.

        A task with a copy out (held elsewhere, or queued again after its holder was
        lost) is remembered, since that copy may still report: see :meth:`was_cancelled`.
        """
        entry = self.entries.pop(task_id, None)
        if entry is not None and (entry.holder is not None or entry.requeued):
            cancelled = self._cancelled
            cancelled[task_id] = None
            if len(cancelled) > CANCELLED_REMEMBERED:
                del cancelled[next(iter(cancelled))]
        return entry

    def was_cancelled(self, task_id: bytes) -> bool:
        """The task was cancelled while a copy was out (and is still remembered)."""
        return task_id in self._cancelled

    def lease(self, task_id: bytes, entry: OriginEntry, holder: NodeId, now: float) -> None:
        """``holder`` holds the task: its lease runs for ``lease_timeout`` from ``now``."""
        entry.holder = holder
        entry.lease_deadline = now + self._timeout
        heapq.heappush(self._heap, (entry.lease_deadline, task_id))

    @staticmethod
    def came_home(entry: OriginEntry) -> None:
        """The task was stolen back to this node: no lease on it any more."""
        entry.holder = None
        entry.lease_deadline = math.inf

    def earliest(self) -> float | None:
        """The earliest live lease deadline (stale heap entries are discarded)."""
        heap, entries = self._heap, self.entries
        while heap:
            deadline, task_id = heap[0]
            entry = entries.get(task_id)
            if entry is not None and entry.holder is not None and entry.lease_deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def expire(self, now: float) -> list[Task]:
        """Take back every task whose lease ran out by ``now``, earliest first."""
        back: list[Task] = []
        while (deadline := self.earliest()) is not None and deadline <= now:
            _, task_id = heapq.heappop(self._heap)
            back.append(self.requeue(self.entries[task_id]))
        return back

    def held_by(self, holder: NodeId) -> list[OriginEntry]:
        """The own tasks ``holder`` holds, in submission order."""
        return [entry for entry in self.entries.values() if entry.holder == holder]

    def requeue(self, entry: OriginEntry) -> Task:
        """Take a task back from its holder; the caller queues it here again."""
        entry.holder = None
        entry.lease_deadline = math.inf
        entry.requeued = True
        self._stats["requeued"] += 1
        return entry.task

    # ------------------------------------------------------------------ holder side

    def schedule_renewal(self, now: float) -> None:
        """Other origins' tasks arrived here: renew their leases in time."""
        if self.renew_at == math.inf:
            self.renew_at = now + self._timeout / 3

    def renew(self, now: float, held: dict[NodeId, list[bytes]]) -> None:
        """Renew the leases on ``held`` (task ids by origin); again in a third of a lease."""
        for origin, ids in held.items():
            self._outbox.send_lease(origin, ids)
        self.renew_at = now + self._timeout / 3 if held else math.inf
