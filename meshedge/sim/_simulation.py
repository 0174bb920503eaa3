"""A deterministic discrete-event simulation of a mesh, driving the real protocol cores.

Each simulated node is a :class:`~meshedge.core._node.NodeCore` — membership, and work
stealing when the simulation has task slots, as the trio runtime drives them — fed with
the datagrams and frames of a virtual network on a virtual clock. Nothing here touches
sockets, threads or the wall clock, and every random choice comes from generators seeded
by ``seed``: the same seed gives the same run.

This module is the public facade. The event loop is in :mod:`.loop`, the virtual network
and its event queue in :mod:`.network`, a node's life and the construction of its core
in :mod:`.node`, and the values a run records in :mod:`.records`.

Signatures: by default nodes sign with
:data:`~meshedge.wire.INSECURE_SIMULATION_SIGNATURES`, a keyed BLAKE2b stand-in with
Ed25519's exact 64-byte size, so every packet keeps its true size on the wire while a
thousand nodes run quickly. Pass ``signatures=ED25519`` for real signatures.
"""

from __future__ import annotations

import gc
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._errors import LocalProtocolError
from .._identity import Identity, NodeId
from ..core._config import stealing_timing_for
from ..core._member import Address, Member, MemberState
from ..core._membership import Membership
from ..core._node import NodeCore, NodeEvent
from ..core._stealing import StealingTiming
from ..core._timing import Timing
from ..wire._signature import INSECURE_SIMULATION_SIGNATURES, SignatureScheme
from ._loop import EventLoop
from ._network import RESUME, VirtualNetwork, address, check_probability
from ._node import PAUSED_BUFFER as PAUSED_BUFFER  # importable from here too
from ._node import SIM_TASK, SimNode, SimSettings, assemble_core
from ._records import Delivery, Execution, SimStatistics, TaskResult

__all__ = [
    "SIM_TASK",
    "Delivery",
    "Execution",
    "SimStatistics",
    "Simulation",
    "SimulationTimeout",
    "TaskResult",
]


class SimulationTimeout(AssertionError):
    """``run_until`` reached its timeout before the predicate held."""


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
        check_probability(loss)
        self.timing = timing or Timing.lan()
        self.mesh = mesh
        self.signatures = signatures
        self.slots = slots
        self.stealing_timing = stealing_timing_for(self.timing, stealing)
        # The order of the draws from the seeder fixes what each seed means.
        seeder = random.Random(seed)
        net_rng = random.Random(seeder.getrandbits(64))
        protocol_seed = seeder.getrandbits(64)
        initial_tags = dict(tags or {})
        self._nodes = [SimNode(i, seeder.randbytes(32), initial_tags) for i in range(nodes)]
        self._config = SimSettings(
            mesh=mesh,
            timing=self.timing,
            signatures=signatures,
            slots=slots,
            stealing=self.stealing_timing,
            protocol_seed=protocol_seed,
        )
        self._network = VirtualNetwork(self._nodes, net_rng, (lo, hi), loss)
        self._loop = EventLoop(self._nodes, self._network)
        #: Each node's id, by index (a restarted node keeps its id).
        self.node_ids = [Identity.from_seed(n.seed, epoch=1).node_id for n in self._nodes]
        self._start(prejoined)

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def address(index: int) -> Address:
        """The virtual address of node ``index``."""
        return address(index)

    @property
    def now(self) -> float:
        """The virtual time, in seconds since the simulation started."""
        return self._loop.now

    @property
    def deliveries(self) -> list[Delivery]:
        """Every application broadcast delivered, in order of delivery."""
        return self._loop.deliveries

    @property
    def executions(self) -> list[Execution]:
        """Every task run, in order of start (tasks can run more than once)."""
        return self._loop.executions

    @property
    def results(self) -> list[TaskResult]:
        """Every result delivered to a submitting node's caller, in order."""
        return self._loop.results

    @property
    def latency(self) -> tuple[float, float]:
        """One-way delay of every datagram and frame, uniform in ``(lo, hi)`` seconds."""
        return self._network.latency

    def _start(self, prejoined: bool) -> None:
        """Boot every node, then either bootstrap them all or have them join node 0."""
        for node in self._nodes:
            self._boot(node, join=False)
        if prejoined:
            self._bootstrap_all()
        else:
            for node in self._nodes[1:]:
                assert node.core is not None
                node.core.join([address(0)], self.now)
        for node in self._nodes:
            self._loop.drain(node)

    def _bootstrap_all(self) -> None:
        """Make every node know every other, silently."""
        cores = [node.core for node in self._nodes if node.core is not None]
        known = [core.alive_statement() for core in cores]
        # About N^2 long-lived member records: the cyclic garbage collector would
        # rescan them over and over while they are built, for nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for core in cores:
                core.bootstrap(known, self.now)
        finally:
            if collecting:
                gc.enable()
        gc.freeze()

    def _boot(self, node: SimNode, *, join: bool) -> None:
        """Start ``node``'s next life; a restarted node joins through up to 3 running nodes."""
        core = assemble_core(self._config, node, self.now)
        node.boot(core)
        if join:
            seeds = [address(n.index) for n in self._nodes if n.up and n is not node]
            core.join(seeds[:3], self.now)

    # ------------------------------------------------------------------ queries

    def node(self, index: int) -> Membership:
        """The protocol core of node ``index`` (the current one after a restart).

        Raises:
            LocalProtocolError: the node has crashed and was not restarted.
        """
        return self.core(index).membership

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
        return self._network.reachable(a, b)

    def components(self) -> list[list[int]]:
        """Groups of up, unpaused nodes that can reach each other."""
        live = [n.index for n in self._nodes if n.up and not self.is_paused(n.index)]
        groups: dict[int, list[int]] = {}
        for index in live:
            groups.setdefault(self._network.group(index), []).append(index)
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
                for reason, count in node.core.counters().refused.drops.items():
                    node_drops[reason] = node_drops.get(reason, 0) + count
        return SimStatistics(
            packets_sent=[n.packets_sent for n in self._nodes],
            bytes_sent=[n.bytes_sent for n in self._nodes],
            frames_sent=[n.frames_sent for n in self._nodes],
            network_drops=dict(self._network.drops),
            node_drops=node_drops,
        )

    def on_event(self, listener: Callable[[int, NodeEvent, float], None]) -> None:
        """Call ``listener(node_index, event, time)`` for every event any node emits."""
        self._loop.listeners.append(listener)

    # ------------------------------------------------------------------ faults

    def crash(self, index: int) -> None:
        """Stop node ``index`` at once: it sends and processes nothing more."""
        self._nodes[index].crash()

    def restart(self, index: int) -> None:
        """Start a crashed node again with the same identity and a larger boot epoch."""
        node = self._nodes[index]
        if node.up:
            node.crash()
        node.epoch += 1
        self._boot(node, join=True)
        self._loop.drain(node)

    def pause(self, index: int, seconds: float) -> None:
        """Freeze node ``index`` for ``seconds``: it then catches up on what it missed."""
        node = self._nodes[index]
        if not node.up or seconds <= 0:
            return
        self._network.push(node.pause(self.now + seconds), RESUME, node, None, None)

    def partition(self, *groups: Iterable[int]) -> None:
        """Split the network: nodes in different groups cannot reach each other.

        Nodes not named form one more group together.
        """
        self._network.partition(groups)

    def heal(self) -> None:
        """Remove every partition (loss settings stay)."""
        self._network.heal()

    def set_loss(self, probability: float) -> None:
        """Drop each datagram with this probability (stream frames are reliable)."""
        self._network.loss = check_probability(probability)

    def set_link_loss(self, a: int, b: int, probability: float) -> None:
        """Extra loss on the link between nodes ``a`` and ``b`` (both directions)."""
        self._network.set_link_loss(a, b, probability)

    # ------------------------------------------------------------------ commands

    def set_tags(self, index: int, tags: Mapping[str, str]) -> None:
        """Node ``index`` changes its tags (they survive a restart)."""
        node = self._nodes[index]
        self.core(index).set_tags(tags, self.now)
        node.tags = dict(tags)
        self._loop.drain(node)

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
        core = self.core(index)
        task = core.new_task(SIM_TASK, [float(seconds)], {}, dict(requires or {}))
        core.submit(task, self.now)
        self._loop.drain(self._nodes[index])
        return task.id

    def broadcast(self, index: int, topic: str, payload: Any) -> None:
        """Node ``index`` broadcasts an application message."""
        self.core(index).broadcast(topic, payload, self.now)
        self._loop.drain(self._nodes[index])

    def leave(self, index: int) -> None:
        """Node ``index`` leaves gracefully (it keeps running to spread the news)."""
        self.core(index).leave(self.now)
        self._loop.drain(self._nodes[index])

    # ------------------------------------------------------------------ running

    def run_for(self, seconds: float) -> None:
        """Advance the virtual clock by ``seconds``, processing everything due."""
        self._loop.run(self.now + seconds, None, 0.0)

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
        if self._loop.run(start + timeout, predicate, check_every):
            return self.now - start
        raise SimulationTimeout(f"not reached within {timeout} virtual seconds")
