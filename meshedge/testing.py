"""Test doubles for meshes: protocol cores over an in-memory network, driven by explicit time.

:class:`CoreMesh` builds ``n`` :class:`~meshedge.core._node.NodeCore` objects (the same
cores a running node drives) and carries their output between them: datagrams may be
lost, frames always arrive in order, links can be cut. Nothing here sleeps or opens a
socket; time moves only when the test says so, so a test is deterministic for a seed::

    mesh = CoreMesh(3)
    mesh.join_all()
    mesh.run_until(mesh.converged, timeout=10)
    mesh.set_loss(0.2)
    mesh.advance(30)
    assert mesh.converged()

Use it for tests of protocols built on meshedge, and to drive a core in a benchmark.
The simulator (:mod:`meshedge.sim`) models latency, crashes and partitions at scale;
this is the small, explicit tool for unit tests. ``docs/testing.md`` shows how.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from ._identity import Identity, NodeId
from .core._config import CoreConfig, TaskSetup
from .core._member import MemberState
from .core._node import NodeCore, NodeEvent
from .core._outputs import CancelTask, Datagram, Frame, StartTask
from .core._stealing import Task, TaskFinished, TaskOutcome
from .core._timing import Timing
from .wire._signature import ED25519, SignatureScheme
from .wire.bodies import Address

# TaskSetup, Task, TaskOutcome and TaskFinished too: what a test of tasks needs.
__all__ = ["CoreMesh", "Sent", "Task", "TaskFinished", "TaskOutcome", "TaskRunner", "TaskSetup"]

#: Runs a started task at once and gives its outcome; None leaves it running (the test
#: finishes it later with :meth:`CoreMesh.finish_task`).
TaskRunner = Callable[[int, Task], TaskOutcome | None]
#: One datagram or frame the mesh delivered: (source index, target index, the item).
Sent: TypeAlias = tuple[int, int, Datagram | Frame]

_PORT = 7946
#: Timer rounds at one instant after which a core counts as stuck: a deadline that
#: handling it does not move would spin a real node's pump forever.
_MAX_ROUNDS_AT_ONE_INSTANT = 10_000
#: Where injected input comes from unless the test says otherwise.
_STRANGER: Address = ("attacker", 1)


class CoreMesh:
    """``size`` node cores over an in-memory network with explicit time.

    Args:
        size: how many cores.
        mesh: the mesh name.
        timing: protocol timing (``Timing.local()`` by default: short periods).
        seed: seeds every core's identity and randomness, and the network's losses.
        loss: probability that a datagram is lost (frames are never lost).
        tasks: work stealing: one task setup for every core, or one per core (None for
            a core without), or None for no work stealing at all.
        run_task: what happens to a started task (see :data:`TaskRunner`); by default
            every task returns None at once.
        tags: initial tags per core index.
        signatures: the signature scheme (Ed25519 by default).
        prejoined: start from a formed mesh: every core knows every other ALIVE
            (silently, without events), as after a join that has converged; as
            ``Simulation(prejoined=True)``.
        record: keep every delivered datagram and frame in :attr:`traffic`.

    Raises:
        ValueError: no cores, a loss outside [0, 1], or task setups for another size.
    """

    def __init__(
        self,
        size: int,
        *,
        mesh: str = "testing",
        timing: Timing | None = None,
        seed: int = 0,
        loss: float = 0.0,
        tasks: TaskSetup | Sequence[TaskSetup | None] | None = None,
        run_task: TaskRunner | None = None,
        tags: Mapping[int, Mapping[str, str]] | None = None,
        signatures: SignatureScheme = ED25519,
        prejoined: bool = False,
        record: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError("a mesh has at least one core")
        #: The current time of every core, in seconds.
        self.now = 0.0
        #: The protocol timing of every core.
        self.timing = timing or Timing.local()
        self._rng = random.Random(seed)
        self._loss = 0.0
        self.set_loss(loss)
        self._blocked: set[tuple[int, int]] = set()
        self._run_task = run_task or (lambda index, task: TaskOutcome.returned(None))
        self._in_flight: deque[Sent] = deque()
        #: Every event each core emitted, in order, by core index.
        self.events: list[list[NodeEvent]] = [[] for _ in range(size)]
        #: Every event of every core as (time, core index, event), in order.
        self.log: list[tuple[float, int, NodeEvent]] = []
        #: Tasks started and not finished yet, by core index, in order of start.
        self.running: list[dict[bytes, Task]] = [{} for _ in range(size)]
        #: Ids of the tasks each core was told to cancel, in order.
        self.cancelled: list[list[bytes]] = [[] for _ in range(size)]
        #: Every datagram and frame delivered, if built with ``record=True``.
        self.traffic: list[Sent] | None = [] if record else None
        #: Datagrams and frames delivered; datagrams lost; items on a cut link
        #: (blocked), and items for an address outside the mesh (unroutable: answers to
        #: injected input, say).
        self.counts = {"datagrams": 0, "frames": 0, "lost": 0, "blocked": 0, "unroutable": 0}
        #: The key pair of every core.
        self.identities = [
            Identity.from_seed(self._rng.randbytes(32), epoch=1) for _ in range(size)
        ]
        #: The node cores, by index.
        self.cores = self._build(mesh, tags or {}, _task_setups(tasks, size), signatures)
        self._by_address = {self.address(i): i for i in range(size)}
        if prejoined:
            self._bootstrap()

    def _build(
        self,
        mesh: str,
        tags: Mapping[int, Mapping[str, str]],
        setups: list[TaskSetup | None],
        signatures: SignatureScheme,
    ) -> list[NodeCore]:
        cores = []
        for index, (identity, setup) in enumerate(zip(self.identities, setups, strict=True)):
            config = CoreConfig(
                mesh=mesh,
                address=self.address(index),
                timing=self.timing,
                tags=dict(tags.get(index, {})),
                signatures=signatures,
                tasks=setup,
            )
            core_rng = random.Random(self._rng.getrandbits(64))
            cores.append(NodeCore.create(identity, config, core_rng, self.now))
        return cores

    def _bootstrap(self) -> None:
        """Make every core know every other, from their own verified ALIVE statements."""
        known = [core.alive_statement() for core in self.cores]
        for core in self.cores:
            core.bootstrap(known, self.now)
        self.deliver()

    # ------------------------------------------------------------------ queries

    @staticmethod
    def address(index: int) -> Address:
        """The address of core ``index``."""
        return (f"core-{index}", _PORT)

    def id(self, index: int) -> NodeId:
        """The node id of core ``index``."""
        return self.cores[index].id

    def index(self, node_id: NodeId) -> int:
        """The index of the core with this node id.

        Raises:
            ValueError: no core of this mesh has it.
        """
        return [core.id for core in self.cores].index(node_id)

    def state(self, observer: int, subject: int) -> MemberState | None:
        """Core ``subject``'s state in core ``observer``'s view (None if unknown)."""
        member = self.cores[observer].member(self.id(subject))
        return None if member is None else member.state

    def converged(self) -> bool:
        """True when every core sees every core ALIVE."""
        size = len(self.cores)
        return all(
            self.state(observer, subject) == MemberState.ALIVE
            for observer in range(size)
            for subject in range(size)
        )

    def events_of(self, index: int, kind: type[Any] | tuple[type[Any], ...]) -> list[Any]:
        """The events of one kind (or of several) that core ``index`` emitted."""
        return [event for event in self.events[index] if isinstance(event, kind)]

    # ------------------------------------------------------------------ the network

    def set_loss(self, probability: float) -> None:
        """Lose each datagram with this probability from now on (frames still arrive)."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError("a loss probability is between 0 and 1")
        self._loss = probability

    def block(self, a: int, b: int) -> None:
        """Cut the link between cores ``a`` and ``b``, both ways (datagrams and frames)."""
        self._blocked |= {(a, b), (b, a)}

    def heal(self, a: int | None = None, b: int | None = None) -> None:
        """Restore the link between ``a`` and ``b``, or every cut link if none is named."""
        if a is None or b is None:
            self._blocked.clear()
        else:
            self._blocked -= {(a, b), (b, a)}

    def inject_datagram(self, to: int, data: bytes, source: Address = _STRANGER) -> None:
        """Hand any bytes to core ``to`` as a datagram from ``source``, then deliver."""
        self.cores[to].receive_datagram(data, source, self.now)
        self.deliver()

    def inject_frame(self, to: int, data: bytes, source: Address = _STRANGER) -> None:
        """Hand any bytes to core ``to`` as a stream frame from ``source``, then deliver."""
        self.cores[to].receive_frame(data, source, self.now)
        self.deliver()

    # ------------------------------------------------------------------ commands

    def join(self, index: int, seeds: Sequence[int]) -> None:
        """Core ``index`` joins through the cores ``seeds``."""
        self.cores[index].join([self.address(seed) for seed in seeds], self.now)
        self.deliver()

    def join_all(self, seed_index: int = 0) -> None:
        """Every other core joins through core ``seed_index``."""
        for index, core in enumerate(self.cores):
            if index != seed_index:
                core.join([self.address(seed_index)], self.now)
        self.deliver()

    def leave(self, index: int) -> None:
        """Core ``index`` leaves gracefully (``LeaveCompleted`` follows in its events)."""
        self.cores[index].leave(self.now)
        self.deliver()

    def set_tags(self, index: int, tags: Mapping[str, str]) -> None:
        """Core ``index`` announces new tags."""
        self.cores[index].set_tags(tags, self.now)
        self.deliver()

    def broadcast(self, index: int, topic: str, payload: Any) -> None:
        """Core ``index`` gossips an application broadcast."""
        self.cores[index].broadcast(topic, payload, self.now)
        self.deliver()

    def send_message(self, index: int, to: int, topic: str, payload: Any) -> None:
        """Core ``index`` sends a direct message to core ``to`` (as a frame)."""
        self.cores[index].send_message(self.id(to), topic, payload, self.now)
        self.deliver()

    def submit(
        self,
        index: int,
        name: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        requires: Mapping[str, str] | None = None,
    ) -> Task:
        """Core ``index`` submits a new task; returns it (its outcome: ``TaskFinished``)."""
        core = self.cores[index]
        task = core.new_task(name, args, kwargs, requires)
        core.submit(task, self.now)
        self.deliver()
        return task

    def cancel(self, index: int, task_id: bytes) -> None:
        """Core ``index`` cancels its own task ``task_id`` wherever it is."""
        self.cores[index].cancel(task_id, self.now)
        self.deliver()

    def finish_task(self, index: int, task_id: bytes, outcome: TaskOutcome) -> None:
        """Report the outcome of a task that core ``index`` runs.

        Raises:
            KeyError: core ``index`` runs no such task (never started, or cancelled).
        """
        self.running[index].pop(task_id)
        self.cores[index].task_done(task_id, outcome, self.now)
        self.deliver()

    def finish_all(self, index: int, outcome: TaskOutcome) -> None:
        """Every task core ``index`` runs now ends with ``outcome``; then deliver once."""
        running, self.running[index] = self.running[index], {}
        for task_id in running:
            self.cores[index].task_done(task_id, outcome, self.now)
        self.deliver()

    # ------------------------------------------------------------------ time

    def deliver(self) -> None:
        """Carry every core's output until nothing more is produced (time stands still)."""
        for index in range(len(self.cores)):
            self._drain(index)
        while self._in_flight:
            item = self._in_flight.popleft()
            source, target, sent = item
            if self.traffic is not None:
                self.traffic.append(item)
            receive = self.cores[target].receive_datagram
            if isinstance(sent, Frame):
                receive = self.cores[target].receive_frame
            receive(sent.data, self.address(source), self.now)
            self._drain(target)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running every timer that falls due."""
        self._run(self.now + seconds, None)

    def run_until(self, predicate: Callable[[], bool], *, timeout: float) -> float:
        """Advance until ``predicate()`` holds, at most ``timeout`` seconds.

        The predicate is checked after every step (a timer round and its deliveries).

        Returns:
            The seconds it took (0 if it held at once).

        Raises:
            AssertionError: the predicate did not hold in time.
        """
        started = self.now
        if not self._run(started + timeout, predicate):
            name = getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(
                f"{name}() did not hold within {timeout} s "
                f"(from t={started:.3f} to t={self.now:.3f})"
            )
        return self.now - started

    def _run(self, end: float, predicate: Callable[[], bool] | None) -> bool:
        """Run timer rounds up to ``end``; True once ``predicate`` holds (without one: at end)."""
        self.deliver()
        rounds = 0
        while predicate is None or not predicate():
            deadline = min(core.get_timer() for core in self.cores)
            if deadline > end:
                self.now = end
                return predicate is None
            rounds = rounds + 1 if deadline <= self.now else 0
            if rounds > _MAX_ROUNDS_AT_ONE_INSTANT:
                raise AssertionError(f"a core's timer stays due at t={self.now:.6f}")
            self.now = max(self.now, deadline)
            for core in self.cores:
                if core.get_timer() <= self.now:
                    core.handle_timer(self.now)
            self.deliver()
        return True

    # ------------------------------------------------------------------ carrying output

    def _drain(self, index: int) -> None:
        """Obey everything core ``index`` asks for, then collect its events."""
        core = self.cores[index]
        while outputs := core.transmit():  # a task finished at once can ask for more
            for output in outputs:
                if isinstance(output, Datagram | Frame):
                    self._send(index, output)
                elif isinstance(output, StartTask):
                    self._start(index, output.task)
                else:
                    self._cancel(index, output)
        while (event := core.next_event()) is not None:
            self.events[index].append(event)
            self.log.append((self.now, index, event))

    def _send(self, source: int, item: Datagram | Frame) -> None:
        target = self._by_address.get(item.address)
        if target is None:
            self.counts["unroutable"] += 1
            return
        if (source, target) in self._blocked:
            self.counts["blocked"] += 1
            return
        if isinstance(item, Datagram):
            if self._loss and self._rng.random() < self._loss:
                self.counts["lost"] += 1
                return
            self.counts["datagrams"] += 1
        else:
            self.counts["frames"] += 1
        self._in_flight.append((source, target, item))

    def _start(self, index: int, task: Task) -> None:
        self.running[index][task.id] = task
        outcome = self._run_task(index, task)
        if outcome is not None:
            self.running[index].pop(task.id)
            self.cores[index].task_done(task.id, outcome, self.now)

    def _cancel(self, index: int, order: CancelTask) -> None:
        self.cancelled[index].append(order.task_id)
        self.running[index].pop(order.task_id, None)


def _task_setups(
    tasks: TaskSetup | Sequence[TaskSetup | None] | None, size: int
) -> list[TaskSetup | None]:
    """One task setup (or None) per core."""
    if tasks is None or isinstance(tasks, TaskSetup):
        return [tasks] * size
    setups = list(tasks)
    if len(setups) != size:
        raise ValueError(f"{len(setups)} task setups for {size} cores")
    return setups
