"""The work-stealing core: one node's queue, victims, leases and results, composed.

Sans-I/O like the membership core: inputs return nothing; outputs are pulled. The parts
(:mod:`.queue`, :mod:`.victims`, :mod:`.adverts`, :mod:`.leases`, :mod:`.results`) each
keep one concept's state; this module routes every input through them and, after each
input, *pumps*: start what can start, steal if running low, advertise, flush results.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..._errors import LocalProtocolError
from ..._identity import NodeId
from ...wire._message_types import MessageType
from ...wire.bodies import Cancel, Lease, Load, Results, Steal, Task, TaskResult, Tasks
from .._member import Member, MemberState
from .._statistics import TaskCounters
from .adverts import Advertiser
from .leases import Leases
from .messages import Outbox, Outgoing, encoded_size
from .queue import LocalQueue
from .results import ResultBatches, bounded_result
from .tasks import TaskFinished, TaskOutcome, new_task_id
from .timing import StealingTiming
from .victims import Peer, Victims

__all__ = ["WorkStealing"]

_Handler = Callable[[NodeId, Peer, Any, float], None]


class WorkStealing:
    """One node's task queue, steals, leases and results.

    Inputs: :meth:`submit`, :meth:`cancel`, :meth:`task_done`, :meth:`member_changed`,
    :meth:`set_tags`, :meth:`receive`, :meth:`handle_timer`. Outputs, pulled:
    :meth:`tasks_to_start`, :meth:`tasks_to_cancel`, :meth:`messages_to_send`,
    :meth:`next_event`, :meth:`get_timer`.

    Args:
        node_id: this node.
        slots: tasks this node runs at once.
        tags: this node's tags (requirements are checked against them).
        can_run: names of the functions registered here (a task with another name
            is never started here, though it may be queued and stolen onwards).
        rng: the only source of randomness (victim choice and task ids).
        timing: periods and bounds.
        run_ahead: names of tasks the runtime can line up behind a busy slot (blocking
            tasks on slot threads, say). While every running task is such a one, up to
            ``slots`` more of them are started early: they count as running (no longer
            stealable) and begin the moment a slot frees, without a trip through the
            event loop. None: never.

    Raises:
        LocalProtocolError: ``slots`` is negative.
    """

    def __init__(
        self,
        node_id: NodeId,
        *,
        slots: int,
        tags: Mapping[str, str],
        can_run: Iterable[str],
        rng: random.Random,
        timing: StealingTiming | None = None,
        run_ahead: Iterable[str] | None = None,
    ) -> None:
        if slots < 0:
            raise LocalProtocolError("slots must be >= 0")
        #: This node.
        self.id = node_id
        #: Periods and bounds.
        self.timing = timing or StealingTiming()
        self._rng = rng
        #: Counters; see :meth:`statistics`.
        self.stats: dict[str, int] = {
            "submitted": 0,
            "completed": 0,
            "duplicates": 0,
            "late_results": 0,
            "requeued": 0,
            "stolen": 0,
            "given": 0,
            "steal_requests": 0,
            "steal_empty": 0,
            "steal_timeouts": 0,
            "dropped_orphans": 0,
        }
        self._outbox = Outbox()
        self._queue = LocalQueue(slots, tags, can_run, run_ahead, self.timing)
        self._victims = Victims(rng, self.timing, self._outbox, self.stats)
        self._leases = Leases(self.timing, self._outbox, self.stats)
        self._results = ResultBatches(self.timing, self._outbox)
        self._adverts = Advertiser(self._queue, self._victims.peers, self._outbox, self.timing)
        self._events: deque[TaskFinished] = deque()
        self._handlers: dict[int, _Handler] = {
            MessageType.LOAD: self._on_load,
            MessageType.STEAL: self._on_steal,
            MessageType.TASKS: self._on_tasks,
            MessageType.LEASE: self._on_lease,
            MessageType.RESULTS: self._on_results,
            MessageType.CANCEL: self._on_cancel,
        }

    # ------------------------------------------------------------------ configuration

    @property
    def slots(self) -> int:
        """Tasks this node runs at once."""
        return self._queue.slots

    @property
    def tags(self) -> Mapping[str, str]:
        """This node's tags (change them with :meth:`set_tags`)."""
        return self._queue.tags

    @property
    def can_run(self) -> frozenset[str]:
        """Names of the functions registered here."""
        return self._queue.can_run

    @property
    def run_ahead(self) -> frozenset[str]:
        """Names of the tasks that may be lined up behind busy slots."""
        return self._queue.run_ahead

    # ------------------------------------------------------------------ queries

    def queued(self) -> int:
        """Tasks waiting in this node's queue."""
        return len(self._queue.tasks)

    def running(self) -> int:
        """Tasks running here."""
        return len(self._queue.running)

    def running_ids(self) -> frozenset[bytes]:
        """Ids of the tasks running here."""
        return frozenset(self._queue.running)

    def queued_tasks(self) -> list[Task]:
        """The tasks waiting here, oldest first (a copy)."""
        return list(self._queue.tasks)

    def pending(self) -> int:
        """Tasks this node originated whose result has not arrived."""
        return len(self._leases.entries)

    @property
    def task_time(self) -> float:
        """Moving average of how long a task runs here, in seconds (0 before any)."""
        return self._queue.task_time

    # The same measurement under the name tests/test_run_ahead.py reads.
    _task_time = task_time

    def counters(self) -> TaskCounters:
        """Counters (they only grow), gauges and steal round trips; see :class:`TaskCounters`.

        The round trips are over the last ``ROUND_TRIP_SAMPLES`` answered steals.
        """
        trips = sorted(self._victims.round_trips)

        def percentile(fraction: float) -> float | None:
            if not trips:
                return None
            return trips[min(len(trips) - 1, max(0, math.ceil(fraction * len(trips)) - 1))]

        return TaskCounters(
            **self.stats,
            queued=len(self._queue.tasks),
            running=len(self._queue.running),
            pending=len(self._leases.entries),
            steal_round_trip_p50=percentile(0.5),
            steal_round_trip_p99=percentile(0.99),
        )

    def statistics(self) -> dict[str, Any]:
        """:meth:`counters` as a dict."""
        return dict(self.counters().items())

    def steal_round_trips(self) -> list[float]:
        """Seconds each of the last ``ROUND_TRIP_SAMPLES`` answered steals took."""
        return list(self._victims.round_trips)

    def can_accept(self) -> bool:
        """False while the queue is full (``submit`` must wait)."""
        return len(self._queue.tasks) < self.timing.max_queued

    def holder_of(self, task_id: bytes) -> NodeId | None:
        """Where an own task is believed to be (this node's id if here), or None."""
        entry = self._leases.entries.get(task_id)
        if entry is None:
            return None
        return entry.holder or self.id

    # ------------------------------------------------------------------ outputs

    def tasks_to_start(self) -> list[Task]:
        """Tasks the runtime must start now (they count as running from here on)."""
        queue = self._queue
        out, queue.to_start = queue.to_start, []
        return out

    def tasks_to_cancel(self) -> list[bytes]:
        """Ids of running tasks the runtime must cancel (their results are not wanted)."""
        queue = self._queue
        out, queue.to_cancel = queue.to_cancel, []
        return out

    def messages_to_send(self) -> list[Outgoing]:
        """Messages to sign and send, oldest first; reliable ones go by stream."""
        return self._outbox.take()

    def next_event(self) -> TaskFinished | None:
        """The next finished own task, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float:
        """When :meth:`handle_timer` must run next (``inf`` when nothing is scheduled)."""
        victims = self._victims
        deadline = min(self._results.deadline, self._leases.renew_at, self._adverts.deadline)
        if victims.steal is not None:
            deadline = min(deadline, victims.steal.sent_at + self.timing.steal_timeout)
        lease = self._leases.earliest()
        if lease is not None:
            deadline = min(deadline, lease)
        if victims.steal is None and self._queue.shortfall(victims.steal_time) > 0:
            # Idle and every victim backing off: wake when the first may be asked again.
            retry = victims.retry_at(len(self._queue.tasks))
            if retry is not None:
                deadline = min(deadline, retry)
        return deadline

    # ------------------------------------------------------------------ inputs

    def new_task(
        self,
        name: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        requires: Mapping[str, str] | None = None,
    ) -> Task:
        """A task originated here, with a fresh id from this core's rng, for :meth:`submit`.

        Args:
            name: the name its function is registered under.
            args: positional arguments (plain CBOR data), stored as given.
            kwargs: keyword arguments (plain CBOR data), stored as given.
            requires: tags a node must have to run it (none: any node).
        """
        return Task(
            new_task_id(self._rng),
            self.id,
            name,
            [] if args is None else args,
            {} if kwargs is None else kwargs,
            {} if requires is None else requires,
        )

    def submit(self, task: Task, now: float) -> None:
        """Queue a task originated here.

        Raises:
            LocalProtocolError: the queue is full (check :meth:`can_accept`), the id is
                already in use, the origin is another node, or the task is too large.
        """
        if not self.can_accept():
            raise LocalProtocolError("the task queue is full; wait for can_accept()")
        if task.id in self._leases.entries or task.origin != self.id:
            raise LocalProtocolError("a task needs a fresh id and this node as origin")
        size = encoded_size(task.to_wire())
        if size > self.timing.max_task_bytes:
            raise LocalProtocolError(
                f"task {task.name!r} encodes to {size} bytes, more than max_task_bytes="
                f"{self.timing.max_task_bytes}"
            )
        self._leases.add(task)
        self._queue.append(task)
        self.stats["submitted"] += 1
        self._pump(now)

    def cancel(self, task_id: bytes, now: float) -> None:
        """The caller gave up on an own task: drop it wherever it is.

        A result that still arrives for it counts in ``late_results``, not as a duplicate.
        """
        entry = self._leases.cancel(task_id)
        if entry is None:
            return
        if entry.holder is not None:
            self._outbox.send_cancel(entry.holder, [task_id])
        else:
            self._queue.drop(task_id)
        self._pump(now)

    def task_done(self, task_id: bytes, outcome: TaskOutcome, now: float) -> None:
        """The runtime finished running a task (returned or raised).

        Args:
            task_id: the task.
            outcome: what it returned or raised.
            now: the current time.
        """
        ok, value = outcome.ok, outcome.value
        queue = self._queue
        task = queue.done(task_id, now)
        if task is None:
            return  # cancelled meanwhile
        ok, value = bounded_result(ok, value, self.timing.max_result_bytes)
        if task.origin == self.id:
            self._finish(task_id, ok, value, self.id)
        else:
            result = TaskResult(task_id, ok, value)
            self._results.add(task.origin, result, now, queue.slots, queue.task_time)
        self._pump(now)

    def member_changed(self, member: Member, now: float) -> None:
        """Tell the core about a member's state or tags (from membership events)."""
        if member.id == self.id:
            return
        alive = member.state in (MemberState.ALIVE, MemberState.SUSPECT)
        was_alive = self._victims.update(member.id, member.tags, alive)
        if not alive and was_alive:
            self._peer_gone(member.id)
        if alive:
            self._adverts.tell(member.id)
        self._pump(now)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """This node's tags changed."""
        self._queue.set_tags(tags)
        self._pump(now)

    def receive(self, sender: NodeId, msg_type: int, body: Any, now: float) -> None:
        """A verified stealing message from ``sender``, with its typed body."""
        peer = self._victims.peers.get(sender)
        if peer is None or not peer.alive:
            return  # not a live member (yet): ignore, it will retry
        handler = self._handlers.get(msg_type)
        if handler is not None:
            handler(sender, peer, body, now)
        self._pump(now)

    def handle_timer(self, now: float) -> None:
        """Run what is due: result batches, lease renewals and expiries, steal timeouts."""
        if now >= self._results.deadline:
            self._results.flush()
        leases = self._leases
        if now >= leases.renew_at:
            leases.renew(now, self._queue.foreign_ids(self.id))
        for task in leases.expire(now):
            self._queue.put_back(task)  # oldest work first
        self._victims.check_timeout(now)
        self._pump(now)

    # ------------------------------------------------------------------ internals

    def _pump(self, now: float) -> None:
        """Start what can start, steal if running low, advertise load, flush results."""
        queue, victims = self._queue, self._victims
        queue.fill_slots(now)
        if victims.steal is None and queue.shortfall(victims.steal_time) > 0:
            victims.try_steal(now, queue)
        self._adverts.maybe_advertise(now)
        results = self._results
        if results and (results.deadline <= now or not (queue.running or queue.runnable)):
            results.flush()

    def _on_load(self, sender: NodeId, peer: Peer, body: Load, now: float) -> None:
        self._victims.heard_load(peer, body)

    def _on_steal(self, thief: NodeId, peer: Peer, body: Steal, now: float) -> None:
        queue, leases = self._queue, self._leases
        queued = len(queue.tasks)
        # Half the difference between the two queues (up to half of ours, when the thief
        # has none): two nodes then never hand the same tasks back and forth. Tasks this
        # node would run itself are shared only to even out the queues; tasks it never
        # runs (no slot, or not allowed here) always go.
        count = min(body.wanted, self.timing.max_batch, math.ceil(queued / 2))
        balance = max(0, (queued - (body.queued or 0)) // 2) if queue.slots else count
        given = queue.give(peer.tags, count, balance)
        if given:
            moved: dict[NodeId, list[bytes]] = {}
            for task in given:
                entry = leases.entries.get(task.id)
                if entry is not None:  # our own task: we know where it went
                    leases.lease(task.id, entry, thief, now)
                elif task.origin != thief:
                    moved.setdefault(task.origin, []).append(task.id)
            # Tell each origin where its tasks went: should the thief die before its own
            # LEASE gets there, the origin still re-queues them when it sees it die,
            # instead of waiting for our lease on them to run out.
            for origin, ids in moved.items():
                self._outbox.send_lease(origin, ids, holder=thief)
            self.stats["given"] += len(given)
        remaining = len(queue.tasks)
        if remaining == 0:
            self._adverts.told_empty = True
        self._outbox.send(thief, Tasks(body.request, tuple(given), remaining), reliable=True)

    def _on_tasks(self, victim: NodeId, peer: Peer, body: Tasks, now: float) -> None:
        self._victims.answered(victim, peer, body, now)
        tasks = body.tasks
        if not tasks:
            return
        self.stats["stolen"] += len(tasks)
        queue, leases = self._queue, self._leases
        held: dict[NodeId, list[bytes]] = {}
        foreign = False
        for task in tasks:
            if task.origin == self.id:
                entry = leases.entries.get(task.id)
                if entry is None:
                    continue  # cancelled or already done
                leases.came_home(entry)
            else:
                foreign = True
                if task.origin != victim:  # the victim told the origin already
                    held.setdefault(task.origin, []).append(task.id)
            queue.append(task)
        for origin, ids in held.items():
            self._outbox.send_lease(origin, ids)
        if foreign:
            leases.schedule_renewal(now)

    def _on_lease(self, sender: NodeId, peer: Peer, body: Lease, now: float) -> None:
        holder = body.holder or sender
        if holder != self.id:
            leases = self._leases
            for task_id in body.task_ids:
                entry = leases.entries.get(task_id)
                if entry is not None:
                    leases.lease(task_id, entry, holder, now)

    def _on_results(self, sender: NodeId, peer: Peer, body: Results, now: float) -> None:
        for task_id, ok, value in body.results:
            self._finish(task_id, ok, value, sender)

    def _on_cancel(self, sender: NodeId, peer: Peer, body: Cancel, now: float) -> None:
        for task_id in body.task_ids:
            self._queue.drop(task_id)

    def _finish(self, task_id: bytes, ok: bool, value: Any, ran_on: NodeId) -> None:
        """An own task's outcome: the first one counts; later ones are dropped.

        A dropped result is late if the caller cancelled the task before any result
        came, and a duplicate otherwise (its first result was delivered).
        """
        leases = self._leases
        entry = leases.entries.pop(task_id, None)
        if entry is None:
            self.stats["late_results" if leases.was_cancelled(task_id) else "duplicates"] += 1
            return
        self.stats["completed"] += 1
        if entry.requeued:
            # A copy may still wait or run here (re-queued after its holder was lost).
            self._queue.drop(task_id)
        self._events.append(TaskFinished(task_id, ok, value, ran_on))

    def _peer_gone(self, node_id: NodeId) -> None:
        """A member died: take back what it held; drop its own tasks (nobody awaits them)."""
        for entry in self._leases.held_by(node_id):
            self._queue.put_back(self._leases.requeue(entry))
        self.stats["dropped_orphans"] += self._queue.drop_origin(node_id)
        self._results.forget(node_id)
        self._victims.forget_steal_to(node_id)
