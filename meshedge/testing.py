"""Test doubles for meshes: protocol cores over an in-memory network, driven by explicit time.

:class:`CoreMesh` builds ``n`` :class:`~meshedge.core.node.NodeCore` objects (the same
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
this is the small, explicit tool for unit tests.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .core.config import CoreConfig, TaskSetup
from .core.member import MemberState
from .core.node import NodeCore, NodeEvent
from .core.outputs import CancelTask, Datagram, Frame, StartTask
from .core.stealing import Task, TaskOutcome
from .core.timing import Timing
from .identity import Identity, NodeId
from .wire.bodies import Address
from .wire.signature import ED25519, SignatureScheme

__all__ = ["CoreMesh", "TaskRunner"]

#: Runs a started task at once and gives its outcome; None leaves it running (the test
#: finishes it later with :meth:`CoreMesh.finish_task`).
TaskRunner = Callable[[int, Task], TaskOutcome | None]

_PORT = 7946


class CoreMesh:
    """``size`` node cores over an in-memory network with explicit time.

    Args:
        size: how many cores.
        mesh: the mesh name.
        timing: protocol timing (``Timing.local()`` by default: short periods).
        seed: seeds every core's randomness and the network's losses.
        loss: probability that a datagram is lost (frames are never lost).
        tasks: a task setup for every core (work stealing), or None.
        run_task: what happens to a started task (see :data:`TaskRunner`); by default
            every task returns None at once.
        tags: initial tags per core index.
        signatures: the signature scheme (Ed25519 by default).
    """

    def __init__(
        self,
        size: int,
        *,
        mesh: str = "testing",
        timing: Timing | None = None,
        seed: int = 0,
        loss: float = 0.0,
        tasks: TaskSetup | None = None,
        run_task: TaskRunner | None = None,
        tags: Mapping[int, Mapping[str, str]] | None = None,
        signatures: SignatureScheme = ED25519,
    ) -> None:
        if size < 1:
            raise ValueError("a mesh has at least one core")
        #: The current time of every core, in seconds.
        self.now = 0.0
        self.timing = timing or Timing.local()
        self._rng = random.Random(seed)
        self._loss = 0.0
        self.set_loss(loss)
        self._blocked: set[tuple[int, int]] = set()
        self._run_task = run_task or (lambda index, task: TaskOutcome.returned(None))
        self._in_flight: deque[tuple[int, int, Datagram | Frame]] = deque()
        #: Every event each core emitted, in order, by core index.
        self.events: list[list[NodeEvent]] = [[] for _ in range(size)]
        #: Tasks started and not finished yet, by core index.
        self.running: list[dict[bytes, Task]] = [{} for _ in range(size)]
        #: Datagrams and frames delivered and lost, in all.
        self.counts = {"datagrams": 0, "frames": 0, "lost": 0, "blocked": 0}
        self.cores: list[NodeCore] = []
        for index in range(size):
            identity = Identity.from_seed(bytes([index % 256, seed % 256]) * 16, epoch=1)
            config = CoreConfig(
                mesh=mesh,
                address=self.address(index),
                timing=self.timing,
                tags=dict((tags or {}).get(index, {})),
                signatures=signatures,
                tasks=tasks,
            )
            core_rng = random.Random(self._rng.getrandbits(64))
            self.cores.append(NodeCore.create(identity, config, core_rng, self.now))
        self._by_address = {self.address(i): i for i in range(size)}

    # ------------------------------------------------------------------ queries

    @staticmethod
    def address(index: int) -> Address:
        """The address of core ``index``."""
        return (f"core-{index}", _PORT)

    def id(self, index: int) -> NodeId:
        """The node id of core ``index``."""
        return self.cores[index].id

    def converged(self) -> bool:
        """True when every core sees every other core ALIVE."""
        ids = [core.id for core in self.cores]
        for core in self.cores:
            for node_id in ids:
                member = core.member(node_id)
                if member is None or member.state != MemberState.ALIVE:
                    return False
        return True

    def events_of(self, index: int, kind: type[Any]) -> list[Any]:
        """The events of one kind that core ``index`` emitted."""
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

    def heal(self) -> None:
        """Restore every cut link."""
        self._blocked.clear()

    # ------------------------------------------------------------------ driving

    def join_all(self, seed_index: int = 0) -> None:
        """Every other core joins through core ``seed_index``, then output is delivered."""
        for index, core in enumerate(self.cores):
            if index != seed_index:
                core.join([self.address(seed_index)], self.now)
        self.deliver()

    def deliver(self) -> None:
        """Carry every core's output until nothing more is produced (time stands still)."""
        self._collect()
        while self._in_flight:
            source, target, item = self._in_flight.popleft()
            core = self.cores[target]
            if isinstance(item, Datagram):
                core.receive_datagram(item.data, self.address(source), self.now)
            else:
                core.receive_frame(item.data, self.address(source), self.now)
            self._collect()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running every timer that falls due."""
        self._run(self.now + seconds, None)

    def run_until(self, predicate: Callable[[], bool], *, timeout: float) -> None:
        """Advance until ``predicate()`` holds, at most ``timeout`` seconds.

        Raises:
            AssertionError: the predicate did not hold in time.
        """
        if not self._run(self.now + timeout, predicate):
            raise AssertionError(f"not reached within {timeout} s (now {self.now:.3f})")

    def finish_task(self, index: int, task_id: bytes, outcome: TaskOutcome) -> None:
        """Report the outcome of a task that core ``index`` runs."""
        self.running[index].pop(task_id)
        self.cores[index].task_done(task_id, outcome, self.now)
        self.deliver()

    def each(self, command: Callable[[NodeCore], None], indexes: Iterable[int]) -> None:
        """Run ``command`` on the given cores, then deliver their output."""
        for index in indexes:
            command(self.cores[index])
        self.deliver()

    def _run(self, end: float, predicate: Callable[[], bool] | None) -> bool:
        self.deliver()
        while predicate is None or not predicate():
            deadline = min(core.get_timer() for core in self.cores)
            if deadline > end:
                self.now = end
                return predicate is None
            self.now = max(self.now, deadline)
            for core in self.cores:
                if core.get_timer() <= self.now:
                    core.handle_timer(self.now)
            self.deliver()
        return True

    def _collect(self) -> None:
        for index, core in enumerate(self.cores):
            for output in core.transmit():
                if isinstance(output, Datagram | Frame):
                    self._send(index, output)
                elif isinstance(output, StartTask):
                    self._start(index, output.task)
                elif isinstance(output, CancelTask):
                    self.running[index].pop(output.task_id, None)
            events = self.events[index]
            while (event := core.next_event()) is not None:
                events.append(event)

    def _send(self, source: int, item: Datagram | Frame) -> None:
        target = self._by_address.get(item.address)
        if target is None or (source, target) in self._blocked:
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
