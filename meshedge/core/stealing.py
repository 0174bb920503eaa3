"""The work-stealing core: idle nodes steal queued tasks; results go home; nothing is lost.

Sans-I/O like the membership core: inputs return nothing (:meth:`WorkStealing.submit`,
:meth:`WorkStealing.receive`, :meth:`WorkStealing.task_done`,
:meth:`WorkStealing.member_changed`, :meth:`WorkStealing.handle_timer`); outputs are
pulled (:meth:`WorkStealing.tasks_to_start`, :meth:`WorkStealing.tasks_to_cancel`,
:meth:`WorkStealing.messages_to_send`, :meth:`WorkStealing.next_event`,
:meth:`WorkStealing.get_timer`).

The model:

* A submitted task enters the queue of its *origin* node, which remembers it until its
  result arrives.
* A node with free slots and too little queued work sends a STEAL request to a victim
  chosen at random among members advertising queued work (LOAD datagrams, at most every
  ``load_interval``), weighted by queue length and by measured round-trip time. It asks
  again before it runs dry, so that idle gaps stay far below a task's length.
* The victim hands over up to half of its queued tasks, oldest first, and only tasks
  whose requirements the thief's tags satisfy.
* A node holding another origin's task (queued or running) holds a *lease* on it,
  renewed every ``lease_timeout / 3``. The origin queues the task again when the holder
  is declared dead or the lease runs out: execution is at-least-once; the origin keeps
  the first result and drops duplicates, so the caller sees exactly one.
* Results go straight to the origin, batched for up to ``result_delay`` while more
  tasks run here (at once when this node runs out of work, or for long tasks).
* When an origin dies its tasks have nobody to report to: holders drop them.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from ..errors import LocalProtocolError
from ..identity import NodeId
from ..wire.cbor import encode
from ..wire.message_types import MessageType
from .member import Member, MemberState

__all__ = [
    "StealingTiming",
    "Task",
    "TaskFinished",
    "TaskOutcome",
    "WorkStealing",
    "requirements_met",
]

#: Task ids are 16 random bytes, drawn by the origin.
TASK_ID_SIZE: Final = 16
#: Ids (or results) in one LEASE, CANCEL or RESULTS message; the wire schema allows 8192.
_IDS_PER_MESSAGE: Final = 4096
#: Steal round trips kept for :meth:`WorkStealing.statistics` (the most recent ones).
ROUND_TRIP_SAMPLES: Final = 4096


def _encoded_size(value: Any) -> int:
    try:
        return len(encode(value))
    except (TypeError, ValueError, OverflowError):
        return 1 << 62  # not encodable at all: certainly too large


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of work: a registered function's name and its plain-data arguments."""

    #: 16 random bytes chosen by the origin.
    id: bytes
    #: The node that submitted it, to which the result goes.
    origin: NodeId
    #: The name under which the function is registered on every node that runs it.
    name: str
    #: Positional arguments (plain CBOR data).
    args: list[Any]
    #: Keyword arguments (plain CBOR data).
    kwargs: dict[str, Any]
    #: Tags a node must have to run it (``{"zone": "eu"}``); empty means any node.
    requires: Mapping[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[int, Any]:
        """The task as a TASKS record."""
        return {
            1: self.id,
            2: bytes(self.origin),
            3: self.name,
            4: self.args,
            5: self.kwargs,
            6: dict(self.requires),
        }

    @classmethod
    def from_wire(cls, record: Mapping[int, Any]) -> Task:
        """Read a TASKS record (already schema-checked by the wire layer)."""
        return cls(
            id=record[1],
            origin=NodeId(record[2]),
            name=record[3],
            args=list(record[4]),
            kwargs=dict(record[5]),
            requires=dict(record[6]),
        )


#: ``(True, value)`` for a result, ``(False, [exception type, message])`` for an error.
TaskOutcome: TypeAlias = tuple[bool, Any]


@dataclass(frozen=True, slots=True)
class TaskFinished:
    """Emitted at the origin, once per task: its (first) outcome arrived."""

    #: The task's id.
    task_id: bytes
    #: True if it returned, False if it raised.
    ok: bool
    #: The result, or ``[exception type name, message]``.
    value: Any
    #: The node that ran it.
    ran_on: NodeId


def requirements_met(requires: Mapping[str, str], tags: Mapping[str, str]) -> bool:
    """True if a node with ``tags`` may run a task that ``requires`` these tags."""
    return all(tags.get(key) == value for key, value in requires.items())


@dataclass(frozen=True, slots=True)
class StealingTiming:
    """Periods and bounds of work stealing, each with its reason."""

    #: Shortest time between two LOAD adverts of one node: often enough that thieves
    #: know who has work, rare enough not to flood (memberlist's gossip interval).
    load_interval: float = 0.2
    #: While tasks wait here, the advert is repeated this often even if unchanged, so
    #: a lost LOAD datagram cannot leave an eligible thief idle for good.
    load_refresh: float = 1.0
    #: A holder that does not renew its lease for this long is presumed gone and its
    #: tasks run again elsewhere. Must exceed the longest expected network hiccup.
    lease_timeout: float = 10.0
    #: How long a steal request may stay unanswered before the thief tries elsewhere.
    steal_timeout: float = 1.0
    #: After an empty answer, leave that victim alone this long (unless it advertises
    #: new work), doubling up to 16 times this while answers stay empty.
    steal_backoff: float = 0.05
    #: Results of short tasks wait at most this long to share one signed frame, while
    #: more tasks run here; when this node runs out of work they go at once, and so do
    #: those of tasks longer than this (per slot), since no other would join them.
    result_delay: float = 0.01
    #: Tasks a thief wants queued beyond its free slots, so it never runs dry while a
    #: steal is in flight.
    prefetch: int = 2
    #: A steal asks for enough tasks to keep the slots busy this much longer (by the
    #: measured task time): for short tasks, one steal then brings many, so that the
    #: signed messages stay a small part of the work; for long ones it adds one or two.
    steal_horizon: float = 0.02
    #: Tasks one node queues at most (submissions wait beyond it).
    max_queued: int = 100_000
    #: Tasks in one TASKS answer.
    max_batch: int = 256
    #: Encoded bytes of one task's name and arguments: tasks travel in stream frames
    #: of at most 1 MiB, so big inputs belong in a file or a store, not in a task.
    max_task_bytes: int = 64 * 1024
    #: Encoded bytes of one result (a larger one is replaced by a ResultTooLarge error).
    max_result_bytes: int = 256 * 1024
    #: Encoded bytes of tasks, results or ids in one frame (half the frame limit).
    max_frame_payload: int = 512 * 1024


@dataclass(slots=True)
class _OriginEntry:
    """What an origin knows about one of its own tasks."""

    task: Task
    holder: NodeId | None = None  # None: here (queued or running)
    lease_deadline: float = math.inf
    requeued: bool = False  # a stale copy may still come back


@dataclass(slots=True)
class _Peer:
    tags: Mapping[str, str]
    alive: bool = True
    queued: int = 0  # tasks it last advertised as queued
    surplus: int = 0  # of which it will never run itself (no slot, or not allowed)
    rtt: float = 0.001
    backoff_until: float = 0.0
    backoff: float = 0.0


#: What the core asks the runtime to send: (peer, message type, body, reliable).
Outgoing: TypeAlias = tuple[NodeId, MessageType, dict[int, Any], bool]


class WorkStealing:
    """One node's task queue, steals, leases and results.

    Args:
        node_id: this node.
        slots: tasks this node runs at once.
        tags: this node's tags (requirements are checked against them).
        can_run: names of the functions registered here (a task with another name
            is never started here, though it may be queued and stolen onwards).
        rng: the only source of randomness.
        timing: periods and bounds.
        run_ahead: names of tasks the runtime can line up behind a busy slot (blocking
            tasks on slot threads, say). While every running task is such a one, up to
            ``slots`` more of them are started early: they count as running (no longer
            stealable) and begin the moment a slot frees, without a trip through the
            event loop. None: never.
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
        self.id = node_id
        self.slots = slots
        self.tags: Mapping[str, str] = dict(tags)
        self.can_run = frozenset(can_run)
        self.run_ahead = frozenset(run_ahead or ())
        self.timing = timing or StealingTiming()
        self._rng = rng
        self._queue: deque[Task] = deque()
        self._runnable = 0  # tasks in the queue this node may run (kept up to date)
        self._running: dict[bytes, Task] = {}
        self._started: dict[bytes, float] = {}
        self._last_done = -math.inf  # when a task last finished here
        self._ahead: set[bytes] = set()  # running tasks that were started ahead
        # Moving averages: how long a task runs here, how long a steal takes.
        self._task_time = 0.0
        self._steal_time = 0.0
        self._to_start: list[Task] = []
        self._to_cancel: list[bytes] = []
        self._outgoing: list[Outgoing] = []
        self._events: deque[TaskFinished] = deque()
        self._origin: dict[bytes, _OriginEntry] = {}
        self._peers: dict[NodeId, _Peer] = {}
        self._results: dict[NodeId, list[list[Any]]] = {}
        self._results_deadline = math.inf
        self._steal: tuple[NodeId, int, float] | None = None  # victim, request, sent at
        self._steal_seq = 0
        self._round_trips: deque[float] = deque(maxlen=ROUND_TRIP_SAMPLES)
        self._next_lease_renewal = math.inf
        # (lease deadline, task id) of own tasks held elsewhere; stale entries skipped
        self._leases: list[tuple[float, bytes]] = []
        self._last_load_sent = -math.inf
        self._advertised = 0
        # Some live peer was last told that nothing here can be stolen (by a LOAD of 0, or
        # by a steal answer that emptied the queue). New work is then advertised at once,
        # not rate-limited: an idle peer that believes there is none would never ask.
        self._told_empty = True
        self._load_deadline = math.inf
        self.stats: dict[str, int] = {
            "submitted": 0,
            "completed": 0,
            "duplicates": 0,
            "requeued": 0,
            "stolen": 0,
            "given": 0,
            "steal_requests": 0,
            "steal_empty": 0,
            "steal_timeouts": 0,
            "dropped_orphans": 0,
        }

    # ------------------------------------------------------------------ queries

    def queued(self) -> int:
        """Tasks waiting in this node's queue."""
        return len(self._queue)

    def running(self) -> int:
        """Tasks running here."""
        return len(self._running)

    def running_ids(self) -> frozenset[bytes]:
        """Ids of the tasks running here."""
        return frozenset(self._running)

    def queued_tasks(self) -> list[Task]:
        """The tasks waiting here, oldest first (a copy)."""
        return list(self._queue)

    def pending(self) -> int:
        """Tasks this node originated whose result has not arrived."""
        return len(self._origin)

    def statistics(self) -> dict[str, Any]:
        """Counters (they only grow), gauges and steal round trips.

        Counters: ``submitted``, ``completed`` (own tasks whose result arrived),
        ``duplicates`` (results dropped because one had arrived), ``requeued`` (own tasks
        queued again after their holder died or its lease ran out), ``stolen`` and
        ``given`` (tasks received and handed out by steals), ``steal_requests``,
        ``steal_empty``, ``steal_timeouts``, ``dropped_orphans`` (tasks of a dead origin).
        Gauges: ``queued``, ``running``, ``pending`` (own tasks without a result yet).
        ``steal_round_trip_p50`` and ``..._p99``: seconds from asking a victim to its
        answer, over the last ``ROUND_TRIP_SAMPLES`` answered steals (None before any).
        """
        trips = sorted(self._round_trips)

        def percentile(fraction: float) -> float | None:
            if not trips:
                return None
            return trips[min(len(trips) - 1, max(0, math.ceil(fraction * len(trips)) - 1))]

        return {
            **self.stats,
            "queued": len(self._queue),
            "running": len(self._running),
            "pending": len(self._origin),
            "steal_round_trip_p50": percentile(0.5),
            "steal_round_trip_p99": percentile(0.99),
        }

    def steal_round_trips(self) -> list[float]:
        """Seconds each of the last ``ROUND_TRIP_SAMPLES`` answered steals took."""
        return list(self._round_trips)

    def can_accept(self) -> bool:
        """False while the queue is full (``submit`` must wait)."""
        return len(self._queue) < self.timing.max_queued

    def holder_of(self, task_id: bytes) -> NodeId | None:
        """Where an own task is believed to be (this node's id if here), or None."""
        entry = self._origin.get(task_id)
        if entry is None:
            return None
        return entry.holder or self.id

    # ------------------------------------------------------------------ outputs

    def tasks_to_start(self) -> list[Task]:
        """Tasks the runtime must start now (they count as running from here on)."""
        out, self._to_start = self._to_start, []
        return out

    def tasks_to_cancel(self) -> list[bytes]:
        """Ids of running tasks the runtime must cancel (their results are not wanted)."""
        out, self._to_cancel = self._to_cancel, []
        return out

    def messages_to_send(self) -> list[Outgoing]:
        """(peer, type, body, reliable) to sign and send; reliable ones go by stream."""
        out, self._outgoing = self._outgoing, []
        return out

    def next_event(self) -> TaskFinished | None:
        """The next finished own task, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float:
        """When :meth:`handle_timer` must run next (``inf`` when nothing is scheduled)."""
        deadline = min(self._results_deadline, self._next_lease_renewal, self._load_deadline)
        if self._steal is not None:
            deadline = min(deadline, self._steal[2] + self.timing.steal_timeout)
        lease = self._earliest_lease()
        if lease is not None:
            deadline = min(deadline, lease)
        if self._steal is None and self._wants_work():
            # Idle and every victim backing off: wake when the first may be asked again.
            waiting = [
                p.backoff_until
                for p in self._peers.values()
                if self._may_rob(p) and p.backoff_until > 0
            ]
            if waiting:
                deadline = min(deadline, min(waiting))
        return deadline

    # ------------------------------------------------------------------ inputs

    def submit(self, task: Task, now: float) -> None:
        """Queue a task originated here.

        Raises:
            LocalProtocolError: the queue is full (check :meth:`can_accept`), or the id
                is already in use.
        """
        if not self.can_accept():
            raise LocalProtocolError("the task queue is full; wait for can_accept()")
        if task.id in self._origin or task.origin != self.id:
            raise LocalProtocolError("a task needs a fresh id and this node as origin")
        size = _encoded_size(task.to_wire())
        if size > self.timing.max_task_bytes:
            raise LocalProtocolError(
                f"task {task.name!r} encodes to {size} bytes, more than max_task_bytes="
                f"{self.timing.max_task_bytes}"
            )
        self._origin[task.id] = _OriginEntry(task)
        self._queue.append(task)
        self._runnable += self._runnable_here(task)
        self.stats["submitted"] += 1
        self._pump(now)

    def cancel(self, task_id: bytes, now: float) -> None:
        """The caller gave up on an own task: drop it wherever it is."""
        entry = self._origin.pop(task_id, None)
        if entry is None:
            return
        if entry.holder is not None:
            self._send_ids(entry.holder, MessageType.CANCEL, [task_id])
        else:
            self._drop_local(task_id)
        self._pump(now)

    def task_done(self, task_id: bytes, outcome: TaskOutcome, now: float) -> None:
        """The runtime finished running a task (returned or raised)."""
        task = self._running.pop(task_id, None)
        started = self._started.pop(task_id, now)
        if task is None:
            return  # cancelled meanwhile
        if task_id in self._ahead:
            # It began when a slot freed, not when it was started.
            self._ahead.discard(task_id)
            started = max(started, self._last_done)
        self._last_done = now
        elapsed = now - started
        self._task_time = elapsed if not self._task_time else 0.9 * self._task_time + 0.1 * elapsed
        ok, value = outcome
        if _encoded_size(value) > self.timing.max_result_bytes:
            ok, value = (
                False,
                ["ResultTooLarge", f"result over {self.timing.max_result_bytes} bytes"],
            )
        if task.origin == self.id:
            self._finish(task_id, ok, value, self.id)
        else:
            batch = self._results.setdefault(task.origin, [])
            batch.append([task_id, ok, value])
            if self._results_deadline == math.inf:
                # Waiting pays only if more results are due meanwhile: the results of
                # tasks longer than that go at once (one wake-up and frame less).
                delay = self.timing.result_delay
                if self.slots * delay < self._task_time:
                    delay = 0.0
                self._results_deadline = now + delay
        self._pump(now)

    def member_changed(self, member: Member, now: float) -> None:
        """Tell the core about a member's state or tags (from membership events)."""
        if member.id == self.id:
            return
        alive = member.state in (MemberState.ALIVE, MemberState.SUSPECT)
        peer = self._peers.get(member.id)
        if peer is None:
            peer = self._peers[member.id] = _Peer(member.tags, alive)
        peer.tags = member.tags
        was_alive, peer.alive = peer.alive, alive
        if not alive and was_alive:
            self._peer_gone(member.id, now)
        elif alive and not was_alive:
            peer.queued = peer.surplus = 0  # unknown until it advertises again
        if alive:
            self._maybe_advertise(now, to=[member.id])
        self._pump(now)

    def set_tags(self, tags: Mapping[str, str], now: float) -> None:
        """This node's tags changed."""
        self.tags = dict(tags)
        self._recount()
        self._pump(now)

    def receive(self, sender: NodeId, msg_type: int, body: Any, now: float) -> None:
        """A verified stealing message from ``sender``."""
        peer = self._peers.get(sender)
        if peer is None or not peer.alive:
            return  # not a live member (yet): ignore, it will retry
        if msg_type == MessageType.LOAD:
            peer.queued = body[1]
            peer.surplus = body.get(2, 0)
            if peer.queued > 0:
                peer.backoff_until = 0.0
        elif msg_type == MessageType.STEAL:
            self._on_steal(sender, peer, body[1], body[2], body.get(3, 0), now)
        elif msg_type == MessageType.TASKS:
            self._on_tasks(sender, peer, body, now)
        elif msg_type == MessageType.LEASE:
            holder = NodeId(body[2]) if 2 in body else sender
            if holder != self.id:
                for task_id in body[1]:
                    entry = self._origin.get(task_id)
                    if entry is not None:
                        self._lease(task_id, entry, holder, now)
        elif msg_type == MessageType.RESULTS:
            for task_id, ok, value in body[1]:
                self._finish(task_id, ok, value, sender)
        elif msg_type == MessageType.CANCEL:
            for task_id in body[1]:
                self._drop_local(task_id)
        self._pump(now)

    def handle_timer(self, now: float) -> None:
        """Run what is due: result batches, lease renewals and expiries, steal timeouts."""
        if now >= self._results_deadline:
            self._flush_results()
        if now >= self._next_lease_renewal:
            self._renew_leases(now)
        while (lease := self._earliest_lease()) is not None and lease <= now:
            _, task_id = heapq.heappop(self._leases)
            self._requeue(task_id, self._origin[task_id])
        if self._steal is not None and now >= self._steal[2] + self.timing.steal_timeout:
            victim = self._steal[0]
            self._steal = None
            self.stats["steal_timeouts"] += 1
            self._back_off(victim, now)
        self._pump(now)

    # ------------------------------------------------------------------ internals

    def _send(
        self, peer: NodeId, msg_type: MessageType, body: dict[int, Any], *, reliable: bool
    ) -> None:
        self._outgoing.append((peer, msg_type, body, reliable))

    def _runnable_here(self, task: Task) -> bool:
        return task.name in self.can_run and requirements_met(task.requires, self.tags)

    def _recount(self) -> None:
        """Count the queued tasks this node may run (after the queue or tags changed)."""
        self._runnable = sum(1 for task in self._queue if self._runnable_here(task))

    def _pump(self, now: float) -> None:
        """Start what can start, steal if running low, advertise load, flush results."""
        if len(self._running) < self.slots and self._runnable:
            skipped: list[Task] = []  # tasks this node may not run keep their place
            while self._runnable and len(self._running) < self.slots:
                task = self._queue.popleft()
                if self._runnable_here(task):
                    self._start(task, now)
                else:
                    skipped.append(task)
            self._queue.extendleft(reversed(skipped))
        self._run_ahead(now)
        if self._steal is None and self._wants_work():
            self._try_steal(now)
        self._maybe_advertise(now)
        if self._results and (
            self._results_deadline <= now or not (self._running or self._runnable)
        ):
            self._flush_results()

    def _start(self, task: Task, now: float) -> None:
        self._runnable -= 1
        self._running[task.id] = task
        self._started[task.id] = now
        self._to_start.append(task)

    def _run_ahead(self, now: float) -> None:
        """Line up the oldest runnable task behind busy slots, if all of it runs ahead.

        Only the queue's oldest task this node may run is considered (no reordering),
        and only while every running task is a run-ahead one too.
        """
        if not self.run_ahead or not self._runnable:
            return
        running = self._running
        while self._runnable and self.slots <= len(running) < 2 * self.slots:
            if not all(task.name in self.run_ahead for task in running.values()):
                return
            position = next(i for i, t in enumerate(self._queue) if self._runnable_here(t))
            task = self._queue[position]
            if task.name not in self.run_ahead:
                return
            del self._queue[position]
            self._start(task, now)
            self._ahead.add(task.id)

    def _tasks_in(self, seconds: float) -> int:
        """Tasks the slots finish in ``seconds``, by the measured task time (0 unknown)."""
        if self._task_time <= 0 or seconds <= 0:
            return 0
        return min(math.ceil(self.slots * seconds / self._task_time), self.timing.max_batch)

    def _low_water(self) -> int:
        """Runnable tasks (running or queued) below which this node steals.

        Every slot busy plus ``prefetch`` queued, plus what the slots finish during one
        steal round trip, so that short tasks never leave a slot idle while the next
        steal is in flight.
        """
        return self.slots + self.timing.prefetch + self._tasks_in(self._steal_time)

    def _shortfall(self) -> int:
        """How many runnable tasks this node lacks below its low-water mark (0: enough)."""
        if not self.slots:
            return 0
        return max(0, self._low_water() - len(self._running) - self._runnable)

    def _wants_work(self) -> bool:
        return self._shortfall() > 0

    def _steal_size(self) -> int:
        """How many tasks to ask for: up to the low-water mark plus ``steal_horizon``."""
        high = self._low_water() + self._tasks_in(self.timing.steal_horizon)
        want = high - len(self._running) - self._runnable
        return max(1, min(want, self.timing.max_batch))

    def _may_rob(self, peer: _Peer) -> bool:
        """Whether ``peer`` has work worth a steal (its back-off aside)."""
        return peer.alive and (peer.surplus > 0 or peer.queued >= len(self._queue) + 2)

    def _try_steal(self, now: float) -> None:
        candidates = [
            (node_id, peer)
            for node_id, peer in self._peers.items()
            if self._may_rob(peer) and peer.backoff_until <= now
        ]
        if not candidates:
            return
        # Weighted by advertised queue length and by closeness (measured round trip).
        weights = [
            max(peer.queued, peer.surplus, 1) / max(peer.rtt, 1e-4) for _, peer in candidates
        ]
        victim, _ = self._rng.choices(candidates, weights)[0]
        want = self._steal_size()
        self._steal_seq += 1
        self._steal = (victim, self._steal_seq, now)
        self.stats["steal_requests"] += 1
        self._send(
            victim,
            MessageType.STEAL,
            {1: self._steal_seq, 2: max(1, min(want, self.timing.max_batch)), 3: len(self._queue)},
            reliable=True,
        )

    def _on_steal(
        self, thief: NodeId, peer: _Peer, request: int, want: int, thief_queued: int, now: float
    ) -> None:
        # Half the difference between the two queues (up to half of ours, when the thief
        # has none), oldest first, only tasks the thief may run, within one frame's
        # budget; the scan stops as soon as enough are found. Giving only half the
        # difference means two nodes never hand the same tasks back and forth.
        count = min(want, self.timing.max_batch, math.ceil(len(self._queue) / 2))
        # Tasks this node would run itself are shared only to even out the two queues;
        # tasks it never runs (no slot, or not allowed here) always go.
        balance = max(0, (len(self._queue) - thief_queued) // 2) if self.slots else count
        given: list[Task] = []
        positions: list[int] = []
        budget = self.timing.max_frame_payload
        for position, task in enumerate(self._queue):
            if len(given) >= count:
                break
            if task.requires and not requirements_met(task.requires, peer.tags):
                continue
            if self._runnable_here(task):
                if balance <= 0:
                    continue
                balance -= 1
            budget -= _encoded_size(task.to_wire())
            if budget < 0 and given:
                break
            given.append(task)
            positions.append(position)
        if given:
            if positions[-1] == len(positions) - 1:  # a prefix: the common case
                for _ in given:
                    self._queue.popleft()
            else:
                given_ids = {task.id for task in given}
                self._queue = deque(t for t in self._queue if t.id not in given_ids)
            self._runnable -= sum(1 for task in given if self._runnable_here(task))
            moved: dict[NodeId, list[bytes]] = {}
            for task in given:
                entry = self._origin.get(task.id)
                if entry is not None:  # our own task: we know where it went
                    self._lease(task.id, entry, thief, now)
                elif task.origin != thief:
                    moved.setdefault(task.origin, []).append(task.id)
            # Tell each origin where its tasks went: should the thief die before its own
            # LEASE gets there, the origin still re-queues them when it sees it die,
            # instead of waiting for our lease on them to run out.
            for origin, ids in moved.items():
                for start in range(0, len(ids), _IDS_PER_MESSAGE):
                    chunk = ids[start : start + _IDS_PER_MESSAGE]
                    body = {1: chunk, 2: bytes(thief)}
                    self._send(origin, MessageType.LEASE, body, reliable=True)
            self.stats["given"] += len(given)
        remaining = len(self._queue)
        if remaining == 0:
            self._told_empty = True
        self._send(
            thief,
            MessageType.TASKS,
            {1: request, 2: [task.to_wire() for task in given], 3: remaining},
            reliable=True,
        )

    def _on_tasks(self, victim: NodeId, peer: _Peer, body: dict[int, Any], now: float) -> None:
        steal = self._steal
        if steal is not None and steal[0] == victim and steal[1] == body[1]:
            self._steal = None
            # Exponentially weighted round-trip estimates, for choosing close victims
            # and for asking enough to cover the next round trip.
            rtt = max(now - steal[2], 1e-5)
            self._round_trips.append(now - steal[2])
            peer.rtt = 0.8 * peer.rtt + 0.2 * rtt
            self._steal_time = rtt if not self._steal_time else 0.8 * self._steal_time + 0.2 * rtt
        peer.queued = body[3]
        peer.surplus = min(peer.surplus, peer.queued)
        tasks = [Task.from_wire(record) for record in body[2]]
        if not tasks:
            self.stats["steal_empty"] += 1
            self._back_off(victim, now)
            return
        peer.backoff = 0.0
        peer.backoff_until = 0.0
        self.stats["stolen"] += len(tasks)
        leases: dict[NodeId, list[bytes]] = {}
        for task in tasks:
            if task.origin == self.id:
                entry = self._origin.get(task.id)
                if entry is None:
                    continue  # cancelled or already done
                entry.holder = None
                entry.lease_deadline = math.inf
            elif task.origin != victim:
                leases.setdefault(task.origin, []).append(task.id)
            self._queue.append(task)
            self._runnable += self._runnable_here(task)
        for origin, ids in leases.items():
            self._send_ids(origin, MessageType.LEASE, ids)
        if self._next_lease_renewal == math.inf and any(t.origin != self.id for t in tasks):
            self._next_lease_renewal = now + self.timing.lease_timeout / 3

    def _back_off(self, victim: NodeId, now: float) -> None:
        peer = self._peers.get(victim)
        if peer is None:
            return
        base = self.timing.steal_backoff
        peer.backoff = min(peer.backoff * 2 if peer.backoff else base, 16 * base)
        peer.backoff_until = now + peer.backoff

    def _finish(self, task_id: bytes, ok: bool, value: Any, ran_on: NodeId) -> None:
        entry = self._origin.pop(task_id, None)
        if entry is None:
            self.stats["duplicates"] += 1
            return
        self.stats["completed"] += 1
        if entry.requeued:
            # A copy may still wait or run here (re-queued after its holder was lost).
            self._drop_local(task_id)
        self._events.append(TaskFinished(task_id, ok, value, ran_on))

    def _drop_local(self, task_id: bytes) -> None:
        if task_id in self._running:
            self._stop_running(task_id)
        elif any(task.id == task_id for task in self._queue):
            self._queue = deque(task for task in self._queue if task.id != task_id)
            self._recount()

    def _stop_running(self, task_id: bytes) -> None:
        """Forget a running task and have the runtime cancel it."""
        del self._running[task_id]
        self._started.pop(task_id, None)
        self._ahead.discard(task_id)
        self._to_cancel.append(task_id)

    def _lease(self, task_id: bytes, entry: _OriginEntry, holder: NodeId, now: float) -> None:
        entry.holder = holder
        entry.lease_deadline = now + self.timing.lease_timeout
        heapq.heappush(self._leases, (entry.lease_deadline, task_id))

    def _earliest_lease(self) -> float | None:
        """The earliest live lease deadline (stale heap entries are discarded)."""
        leases = self._leases
        while leases:
            deadline, task_id = leases[0]
            entry = self._origin.get(task_id)
            if entry is not None and entry.holder is not None and entry.lease_deadline == deadline:
                return deadline
            heapq.heappop(leases)
        return None

    def _requeue(self, task_id: bytes, entry: _OriginEntry) -> None:
        entry.holder = None
        entry.lease_deadline = math.inf
        entry.requeued = True
        self.stats["requeued"] += 1
        self._queue.appendleft(entry.task)  # oldest work first
        self._runnable += self._runnable_here(entry.task)

    def _peer_gone(self, node_id: NodeId, now: float) -> None:
        for task_id, entry in list(self._origin.items()):
            if entry.holder == node_id:
                self._requeue(task_id, entry)
        # Tasks of a dead origin have nobody to report to.
        orphans = [t for t in self._queue if t.origin == node_id]
        if orphans:
            self.stats["dropped_orphans"] += len(orphans)
            self._queue = deque(t for t in self._queue if t.origin != node_id)
            self._recount()
        for task_id, task in list(self._running.items()):
            if task.origin == node_id:
                self.stats["dropped_orphans"] += 1
                self._stop_running(task_id)
        self._results.pop(node_id, None)
        if self._steal is not None and self._steal[0] == node_id:
            self._steal = None

    def _renew_leases(self, now: float) -> None:
        by_origin: dict[NodeId, list[bytes]] = {}
        for task in [*self._running.values(), *self._queue]:
            if task.origin != self.id:
                by_origin.setdefault(task.origin, []).append(task.id)
        for origin, ids in by_origin.items():
            self._send_ids(origin, MessageType.LEASE, ids)
        self._next_lease_renewal = now + self.timing.lease_timeout / 3 if by_origin else math.inf

    def _send_ids(self, peer: NodeId, msg_type: MessageType, ids: list[bytes]) -> None:
        for start in range(0, len(ids), _IDS_PER_MESSAGE):
            self._send(peer, msg_type, {1: ids[start : start + _IDS_PER_MESSAGE]}, reliable=True)

    def _flush_results(self) -> None:
        for origin, batch in self._results.items():
            chunk: list[list[Any]] = []
            budget = self.timing.max_frame_payload
            for result in batch:
                size = _encoded_size(result[2]) + 24
                if chunk and (budget < size or len(chunk) >= _IDS_PER_MESSAGE):
                    self._send(origin, MessageType.RESULTS, {1: chunk}, reliable=True)
                    chunk, budget = [], self.timing.max_frame_payload
                chunk.append(result)
                budget -= size
            if chunk:
                self._send(origin, MessageType.RESULTS, {1: chunk}, reliable=True)
        self._results.clear()
        self._results_deadline = math.inf

    def _surplus(self) -> int:
        """Queued tasks this node will never run itself: all of them without a slot."""
        return len(self._queue) - self._runnable if self.slots else len(self._queue)

    def _maybe_advertise(self, now: float, *, to: list[NodeId] | None = None) -> None:
        """Tell live peers how many tasks could be stolen here (rate-limited).

        New work after a peer was told there is none goes out at once (see
        ``_told_empty``); other changes at most every ``load_interval``.
        """
        stealable = len(self._queue)
        surplus = self._surplus()
        if to is not None:
            for node_id in to:
                self._send(node_id, MessageType.LOAD, {1: stealable, 2: surplus}, reliable=False)
            if stealable == 0:
                self._told_empty = True
            return
        urgent = stealable > 0 and self._told_empty
        refresh_at = self._last_load_sent + self.timing.load_refresh
        if stealable == self._advertised and not urgent and (stealable == 0 or now < refresh_at):
            self._load_deadline = refresh_at if stealable else math.inf
            return
        # Same expression as the deadline set below, so a timer at it always passes.
        if now < self._last_load_sent + self.timing.load_interval and not urgent:
            self._load_deadline = self._last_load_sent + self.timing.load_interval
            return
        self._load_deadline = now + self.timing.load_refresh if stealable else math.inf
        self._last_load_sent = now
        self._advertised = stealable
        self._told_empty = stealable == 0
        for node_id, peer in self._peers.items():
            if peer.alive:
                self._send(node_id, MessageType.LOAD, {1: stealable, 2: surplus}, reliable=False)
