"""A deterministic discrete-event simulation of a mesh, driving the real protocol cores.

Each simulated node is a :class:`~meshedge.core.membership.Membership` — the class the
trio runtime drives — fed with the datagrams and frames of a virtual network on a
virtual clock. Nothing here touches sockets, threads or the wall clock, and every random
choice comes from generators seeded by ``seed``: the same seed gives the same run.

Signatures: by default nodes sign with
:data:`~meshedge.wire.INSECURE_SIMULATION_SIGNATURES`, a keyed BLAKE2b stand-in with
Ed25519's exact 64-byte size, so every packet keeps its true size on the wire while a
thousand nodes run quickly. Pass ``signatures=ED25519`` for real signatures.
"""

from __future__ import annotations

import gc
import heapq
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.events import BroadcastReceived
from ..core.member import Address, Member, MemberState
from ..core.membership import Membership
from ..core.node import NodeCore, NodeEvent
from ..core.stealing import StealingTiming, Task, TaskFinished, WorkStealing
from ..core.timing import Timing
from ..errors import LocalProtocolError
from ..identity import Identity, NodeId
from ..wire.message import SignedMessage, verify_message
from ..wire.signature import INSECURE_SIMULATION_SIGNATURES, SignatureScheme

__all__ = [
    "SIM_TASK",
    "Delivery",
    "Execution",
    "SimStatistics",
    "Simulation",
    "SimulationTimeout",
    "TaskResult",
]

_TIMER, _DATAGRAM, _FRAME, _RESUME, _TASK_DONE = range(5)
#: The one task every simulated node can run: ``sim.work(seconds)`` takes that long.
SIM_TASK = "sim.work"
#: Datagrams a paused node's socket buffer holds; later ones are dropped, as by a kernel.
PAUSED_BUFFER = 256
_PORT = 7946


class SimulationTimeout(AssertionError):
    """``run_until`` reached its timeout before the predicate held."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One application broadcast delivered to one node."""

    #: Index of the receiving node.
    node: int
    #: Who broadcast it.
    sender: NodeId
    #: Its topic.
    topic: str
    #: Its payload.
    payload: Any
    #: Virtual time of delivery.
    time: float


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a task on one node (a task may run more than once)."""

    #: The task's id.
    task_id: bytes
    #: Index of the node that ran it.
    node: int
    #: Virtual time it started.
    start: float
    #: The requirements it carried.
    requires: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TaskResult:
    """A result as the submitting node's caller sees it."""

    #: The task's id.
    task_id: bytes
    #: Index of the origin node.
    origin: int
    #: The node that ran it.
    ran_on: NodeId
    #: Virtual time the origin got it.
    time: float


@dataclass(slots=True)
class SimStatistics:
    """Traffic counters, indexed like ``Simulation.node_ids``."""

    #: Datagrams each node sent.
    packets_sent: list[int]
    #: Bytes each node sent (datagrams and stream frames).
    bytes_sent: list[int]
    #: Stream frames (anti-entropy) each node sent.
    frames_sent: list[int]
    #: Datagrams and frames the network dropped, by cause (loss, partition, down, buffer).
    network_drops: dict[str, int] = field(default_factory=dict)
    #: Drops by the nodes themselves, by wire reason, summed over nodes.
    node_drops: dict[str, int] = field(default_factory=dict)


class _SimNode:
    __slots__ = (
        "index",
        "seed",
        "epoch",
        "core",
        "up",
        "paused_until",
        "inbox",
        "timer",
        "life",
        "tags",
        "packets_sent",
        "bytes_sent",
        "frames_sent",
    )

    def __init__(self, index: int, seed: bytes) -> None:
        self.index = index
        self.seed = seed
        self.epoch = 1
        self.core: NodeCore | None = None
        self.up = False
        self.paused_until = 0.0
        self.inbox: deque[tuple[int, bytes, Address]] = deque()
        self.timer = float("inf")
        self.life = 0
        self.tags: dict[str, str] = {}
        self.packets_sent = 0
        self.bytes_sent = 0
        self.frames_sent = 0


class Simulation:
    """A mesh of ``nodes`` simulated nodes on a virtual network.

    Args:
        nodes: how many nodes.
        seed: seeds every random choice (identities, protocol, network).
        timing: protocol timing of every node (``Timing.lan()`` by default).
        loss: probability that the network drops a datagram.
        latency: one-way delay of every datagram and frame, uniform in ``(lo, hi)`` s.
        prejoined: start with every node knowing every other (for large meshes);
            otherwise nodes join through node 0 and the mesh forms by itself.
        mesh: the mesh name.
        signatures: signature scheme (fast same-size stand-in by default).
        tags: initial tags of every node.
        slots: task slots per node; above 0 every node runs the work-stealing core
            too, and :meth:`submit` queues tasks that take virtual time.
        stealing: work-stealing periods and bounds (defaults, with the load interval
            set to the timing's gossip interval).
    """

    def __init__(
        self,
        nodes: int,
        seed: int = 0,
        timing: Timing | None = None,
        loss: float = 0.0,
        latency: tuple[float, float] = (0.0005, 0.002),
        prejoined: bool = False,
        *,
        mesh: str = "sim",
        signatures: SignatureScheme = INSECURE_SIMULATION_SIGNATURES,
        tags: Mapping[str, str] | None = None,
        slots: int = 0,
        stealing: StealingTiming | None = None,
    ) -> None:
        if nodes < 1:
            raise LocalProtocolError("a simulation needs at least one node")
        lo, hi = latency
        if not 0 <= lo <= hi:
            raise LocalProtocolError("latency is (lo, hi) seconds with 0 <= lo <= hi")
        self.timing = timing or Timing.lan()
        self.mesh = mesh
        self.signatures = signatures
        self.latency = (lo, hi)
        self.now = 0.0
        self._loss = 0.0
        self.set_loss(loss)
        seeder = random.Random(seed)
        self._net_rng = random.Random(seeder.getrandbits(64))
        self._protocol_seed = seeder.getrandbits(64)
        self._nodes = [_SimNode(i, seeder.randbytes(32)) for i in range(nodes)]
        self._by_address: dict[Address, int] = {self.address(i): i for i in range(nodes)}
        self.node_ids = [Identity.from_seed(n.seed, epoch=1).node_id for n in self._nodes]
        self._queue: list[tuple[float, int, int, int, int, Any, Address | None]] = []
        self._sequence = 0
        self._groups: list[int] | None = None
        self._link_loss: dict[tuple[int, int], float] = {}
        self._network_drops = {"loss": 0, "partition": 0, "down": 0, "buffer": 0}
        self._listeners: list[Callable[[int, NodeEvent, float], None]] = []
        #: Every application broadcast delivered, in order of delivery.
        self.deliveries: list[Delivery] = []
        self._tags = dict(tags or {})
        self.slots = slots
        self.stealing_timing = stealing or StealingTiming(load_interval=self.timing.gossip_interval)
        self._task_rng = random.Random(seeder.getrandbits(64))
        #: Every task run, in order of start (tasks can run more than once).
        self.executions: list[Execution] = []
        #: Every result delivered to a submitting node's caller, in order.
        self.results: list[TaskResult] = []
        for node in self._nodes:
            node.tags = dict(self._tags)
        for node in self._nodes:
            self._boot(node, join=False)
        if prejoined:
            known = [self._verified_alive(node) for node in self._nodes]
            # About N^2 long-lived member records: the cyclic garbage collector would
            # rescan them over and over while they are built, for nothing.
            collecting = gc.isenabled()
            gc.disable()
            try:
                for node in self._nodes:
                    assert node.core is not None
                    node.core.bootstrap(known, self.now)
            finally:
                if collecting:
                    gc.enable()
            gc.freeze()
        else:
            for node in self._nodes[1:]:
                assert node.core is not None
                node.core.join([self.address(0)], self.now)
        for node in self._nodes:
            self._flush(node)

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def address(index: int) -> Address:
        """The virtual address of node ``index``."""
        return (f"n{index}", _PORT)

    def _boot(self, node: _SimNode, *, join: bool) -> None:
        identity = Identity.from_seed(node.seed, epoch=node.epoch)
        rng = random.Random(self._protocol_seed ^ (node.index << 20) ^ node.epoch)
        membership = Membership(
            identity,
            mesh=self.mesh,
            address=self.address(node.index),
            now=self.now,
            rng=rng,
            timing=self.timing,
            tags=node.tags,
            signatures=self.signatures,
        )
        stealing = None
        if self.slots > 0:
            stealing = WorkStealing(
                identity.node_id,
                slots=self.slots,
                tags=node.tags,
                can_run={SIM_TASK},
                rng=random.Random(rng.getrandbits(64)),
                timing=self.stealing_timing,
            )
        node.core = NodeCore(membership, stealing)
        node.up = True
        node.paused_until = 0.0
        node.inbox.clear()
        node.life += 1
        node.timer = float("inf")
        if join:
            seeds = [self.address(n.index) for n in self._nodes if n.up and n is not node]
            node.core.join(seeds[:3], self.now)

    def _verified_alive(self, node: _SimNode) -> tuple[SignedMessage, bytes]:
        assert node.core is not None
        record = node.core.membership._members[node.core.id]
        unit = record.alive_unit
        message = verify_message(
            unit, mesh=self.mesh, signatures=self.signatures, max_size=len(unit)
        )
        return message, unit

    # ------------------------------------------------------------------ queries

    def node(self, index: int) -> Membership:
        """The protocol core of node ``index`` (the current one after a restart).

        Raises:
            LocalProtocolError: the node has crashed and was not restarted.
        """
        core = self._nodes[index].core
        if core is None or not self._nodes[index].up:
            raise LocalProtocolError(f"node {index} is down")
        return core.membership

    def core(self, index: int) -> NodeCore:
        """The whole node core of node ``index`` (membership and work stealing).

        Raises:
            LocalProtocolError: the node has crashed and was not restarted.
        """
        core = self._nodes[index].core
        if core is None or not self._nodes[index].up:
            raise LocalProtocolError(f"node {index} is down")
        return core

    def is_up(self, index: int) -> bool:
        """True unless node ``index`` crashed (a paused node is up)."""
        return self._nodes[index].up

    def is_paused(self, index: int) -> bool:
        """True while node ``index`` is paused."""
        return self._nodes[index].paused_until > self.now

    def view(self, index: int) -> dict[NodeId, Member]:
        """Node ``index``'s view: every member it knows, by id."""
        return {m.id: m for m in self.node(index).members()}

    def reachable(self, a: int, b: int) -> bool:
        """True if no partition separates nodes ``a`` and ``b`` (loss aside)."""
        groups = self._groups
        return groups is None or groups[a] == groups[b]

    def components(self) -> list[list[int]]:
        """Groups of up, unpaused nodes that can reach each other."""
        live = [n.index for n in self._nodes if n.up and not self.is_paused(n.index)]
        groups: dict[int, list[int]] = {}
        for index in live:
            key = self._groups[index] if self._groups is not None else 0
            groups.setdefault(key, []).append(index)
        return list(groups.values())

    def converged(self) -> bool:
        """True when every group of mutually reachable live nodes has converged.

        Converged means that every node of the group sees exactly the group as its alive
        members, with the same tags for each.
        """
        for component in self.components():
            expected = {self.node_ids[i] for i in component}
            reference: dict[NodeId, Mapping[str, str]] | None = None
            for index in component:
                alive = {
                    m.id: m.tags for m in self.node(index).members() if m.state == MemberState.ALIVE
                }
                if alive.keys() != expected:
                    return False
                if reference is None:
                    reference = alive
                elif alive != reference:
                    return False
        return True

    def statistics(self) -> SimStatistics:
        """Traffic counters so far (per node, and drops)."""
        node_drops: dict[str, int] = {}
        for node in self._nodes:
            if node.core is not None:
                for reason, count in node.core.membership.statistics()["drops"].items():
                    node_drops[reason] = node_drops.get(reason, 0) + count
        return SimStatistics(
            packets_sent=[n.packets_sent for n in self._nodes],
            bytes_sent=[n.bytes_sent for n in self._nodes],
            frames_sent=[n.frames_sent for n in self._nodes],
            network_drops=dict(self._network_drops),
            node_drops=node_drops,
        )

    def on_event(self, listener: Callable[[int, NodeEvent, float], None]) -> None:
        """Call ``listener(node_index, event, time)`` for every event any node emits."""
        self._listeners.append(listener)

    # ------------------------------------------------------------------ faults

    def crash(self, index: int) -> None:
        """Stop node ``index`` at once: it sends and processes nothing more."""
        node = self._nodes[index]
        node.up = False
        node.inbox.clear()
        node.life += 1

    def restart(self, index: int) -> None:
        """Start a crashed node again with the same identity and a larger boot epoch."""
        node = self._nodes[index]
        if node.up:
            self.crash(index)
        node.epoch += 1
        self._boot(node, join=True)
        self._flush(node)

    def pause(self, index: int, seconds: float) -> None:
        """Freeze node ``index`` for ``seconds``: it then catches up on what it missed."""
        node = self._nodes[index]
        if not node.up or seconds <= 0:
            return
        node.paused_until = max(node.paused_until, self.now + seconds)
        self._push(node.paused_until, _RESUME, node, None, None)

    def partition(self, *groups: Iterable[int]) -> None:
        """Split the network: nodes in different groups cannot reach each other.

        Nodes not named form one more group together.
        """
        assignment = [len(groups)] * len(self._nodes)
        for number, group in enumerate(groups):
            for index in group:
                assignment[index] = number
        self._groups = assignment

    def heal(self) -> None:
        """Remove every partition (loss settings stay)."""
        self._groups = None

    def set_loss(self, probability: float) -> None:
        """Drop each datagram with this probability (stream frames are reliable)."""
        if not 0.0 <= probability <= 1.0:
            raise LocalProtocolError("loss is a probability between 0 and 1")
        self._loss = probability

    def set_link_loss(self, a: int, b: int, probability: float) -> None:
        """Extra loss on the link between nodes ``a`` and ``b`` (both directions)."""
        if not 0.0 <= probability <= 1.0:
            raise LocalProtocolError("loss is a probability between 0 and 1")
        self._link_loss[(min(a, b), max(a, b))] = probability

    # ------------------------------------------------------------------ commands

    def set_tags(self, index: int, tags: Mapping[str, str]) -> None:
        """Node ``index`` changes its tags (they survive a restart)."""
        node = self._nodes[index]
        self.core(index).set_tags(tags, self.now)
        node.tags = dict(tags)
        self._flush(node)

    def submit(
        self, index: int, seconds: float, *, requires: Mapping[str, str] | None = None
    ) -> bytes:
        """Node ``index`` submits a task that runs for ``seconds`` of virtual time.

        Returns:
            The task's id (see :attr:`results` and :attr:`executions`).

        Raises:
            LocalProtocolError: the simulation runs without task slots, the node is
                down, or its queue is full.
        """
        node = self._nodes[index]
        core = self.core(index)
        task = Task(
            id=self._task_rng.randbytes(16),
            origin=core.id,
            name=SIM_TASK,
            args=[float(seconds)],
            kwargs={},
            requires=dict(requires or {}),
        )
        core.submit(task, self.now)
        self._flush(node)
        return task.id

    def broadcast(self, index: int, topic: str, payload: Any) -> None:
        """Node ``index`` broadcasts an application message."""
        node = self._nodes[index]
        self.core(index).broadcast(topic, payload, self.now)
        self._flush(node)

    def leave(self, index: int) -> None:
        """Node ``index`` leaves gracefully (it keeps running to spread the news)."""
        node = self._nodes[index]
        self.core(index).leave(self.now)
        self._flush(node)

    # ------------------------------------------------------------------ running

    def run_for(self, seconds: float) -> None:
        """Advance the virtual clock by ``seconds``, processing everything due."""
        self._run(self.now + seconds, None, 0.0)

    def run_until(
        self, predicate: Callable[[], bool], timeout: float, *, check_every: float = 0.01
    ) -> float:
        """Run until ``predicate()`` holds (checked every ``check_every`` virtual seconds).

        Returns:
            The virtual seconds it took.

        Raises:
            SimulationTimeout: ``timeout`` virtual seconds passed first.
        """
        start = self.now
        if predicate():
            return 0.0
        if self._run(start + timeout, predicate, check_every):
            return self.now - start
        raise SimulationTimeout(f"not reached within {timeout} virtual seconds")

    def _run(self, end: float, predicate: Callable[[], bool] | None, check_every: float) -> bool:
        queue = self._queue
        next_check = self.now + check_every
        while queue and queue[0][0] <= end:
            when = queue[0][0]
            if predicate is not None and when > next_check:
                self.now = next_check
                if predicate():
                    return True
                next_check += check_every
                continue
            _, _, kind, index, life, data, addr = heapq.heappop(queue)
            self.now = when
            node = self._nodes[index]
            if life != node.life or not node.up:
                if kind in (_DATAGRAM, _FRAME):
                    self._network_drops["down"] += 1
                continue
            if kind == _TASK_DONE and node.paused_until <= when:
                assert node.core is not None
                if data in node.core.stealing.running_ids():  # type: ignore[union-attr]
                    node.core.task_done(data, (True, None), when)
                self._flush(node)
                continue
            if kind == _TIMER:
                if when != node.timer:
                    continue  # superseded
                if node.paused_until > when:
                    continue  # the resume event runs the timer
                node.timer = float("inf")
                assert node.core is not None
                node.core.handle_timer(when)
            elif kind == _RESUME:
                if node.paused_until > when:
                    continue
                self._resume(node)
            elif node.paused_until > when:
                if kind == _TASK_DONE:  # a frozen process finishes nothing
                    node.inbox.append((kind, data, ("", 0)))
                    continue
                if len(node.inbox) >= PAUSED_BUFFER and kind == _DATAGRAM:
                    self._network_drops["buffer"] += 1
                else:
                    node.inbox.append((kind, data, addr))  # type: ignore[arg-type]
                continue
            else:
                assert node.core is not None and addr is not None
                if kind == _DATAGRAM:
                    node.core.receive_datagram(data, addr, when)
                else:
                    node.core.receive_frame(data, addr, when)
            self._flush(node)
        if predicate is not None:
            while next_check <= end:
                self.now = next_check
                if predicate():
                    return True
                next_check += check_every
        self.now = end
        return predicate is None

    def _resume(self, node: _SimNode) -> None:
        core = node.core
        assert core is not None
        while node.inbox:
            kind, data, addr = node.inbox.popleft()
            if kind == _DATAGRAM:
                core.receive_datagram(data, addr, self.now)
            elif kind == _FRAME:
                core.receive_frame(data, addr, self.now)
            elif core.stealing is not None and data in core.stealing.running_ids():
                core.task_done(data, (True, None), self.now)
        node.timer = float("inf")
        core.handle_timer(self.now)

    def _push(
        self, when: float, kind: int, node: _SimNode, data: Any, addr: Address | None
    ) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (when, self._sequence, kind, node.index, node.life, data, addr))

    def _flush(self, node: _SimNode) -> None:
        """Collect a node's output: send its packets, record its events, set its timer."""
        core = node.core
        if core is None or not node.up:
            return
        source = self.address(node.index)
        for data, addr in core.datagrams_to_send():
            node.packets_sent += 1
            node.bytes_sent += len(data)
            self._transmit(node, _DATAGRAM, data, addr, source)
        for data, addr in core.frames_to_send():
            node.frames_sent += 1
            node.bytes_sent += len(data)
            self._transmit(node, _FRAME, data, addr, source)
        core.tasks_to_cancel()  # their completion events find them gone and do nothing
        for task in core.tasks_to_start():
            self.executions.append(Execution(task.id, node.index, self.now, task.requires))
            self._push(self.now + float(task.args[0]), _TASK_DONE, node, task.id, None)
        while (event := core.next_event()) is not None:
            if isinstance(event, BroadcastReceived):
                self.deliveries.append(
                    Delivery(node.index, event.sender, event.topic, event.payload, self.now)
                )
            elif isinstance(event, TaskFinished):
                self.results.append(TaskResult(event.task_id, node.index, event.ran_on, self.now))
            for listener in self._listeners:
                listener(node.index, event, self.now)
        deadline = max(core.get_timer(), self.now)
        if deadline != node.timer:
            node.timer = deadline
            self._push(deadline, _TIMER, node, None, None)

    def _transmit(
        self, sender: _SimNode, kind: int, data: bytes, addr: Address, source: Address
    ) -> None:
        target_index = self._by_address.get(addr)
        if target_index is None:
            self._network_drops["down"] += 1
            return
        if not self.reachable(sender.index, target_index):
            self._network_drops["partition"] += 1
            return
        rng = self._net_rng
        if kind == _DATAGRAM:
            loss = self._loss
            link = self._link_loss.get(
                (min(sender.index, target_index), max(sender.index, target_index))
            )
            if link:
                loss = 1 - (1 - loss) * (1 - link)
            if loss and rng.random() < loss:
                self._network_drops["loss"] += 1
                return
        lo, hi = self.latency
        target = self._nodes[target_index]
        self._push(self.now + rng.uniform(lo, hi), kind, target, data, source)
