"""A simulated node's life: its seed and counters, its core, boot, crash, pause, resume.

A node keeps its index, seed, tags and traffic counters for the whole simulation; its
core is rebuilt at every boot, with the same identity seed and a boot epoch one larger
than the last. A *life* runs from one boot to the next crash or boot, and every queued
event carries the life it was scheduled for, so events meant for a crashed life are
void. A paused node is up but frozen: what arrives waits in its inbox until it resumes.

:func:`assemble_core` builds a node's core (with :meth:`NodeCore.create`).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from .._identity import Identity
from ..core._config import CoreConfig, TaskSetup
from ..core._member import Address
from ..core._node import NodeCore
from ..core._stealing import StealingTiming, TaskOutcome
from ..core._timing import Timing
from ..wire._signature import SignatureScheme
from ._network import DATAGRAM, FRAME, address

__all__ = [
    "SimSettings",
    "PAUSED_BUFFER",
    "SIM_TASK",
    "SimNode",
    "assemble_core",
]

#: The one task every simulated node can run: ``sim.work(seconds)`` takes that long.
SIM_TASK = "sim.work"
#: Datagrams a paused node's socket buffer holds; later ones are dropped, as by a kernel.
PAUSED_BUFFER = 256


class SimNode:
    """One simulated node, across all its lives.

    Args:
        index: its index in the simulation.
        seed: seeds its identity (the same in every life).
        tags: its initial tags.
    """

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

    def __init__(self, index: int, seed: bytes, tags: dict[str, str]) -> None:
        self.index = index
        self.seed = seed
        #: Boot epoch of the current (or next) core.
        self.epoch = 1
        self.core: NodeCore | None = None
        #: False once crashed (a paused node is up).
        self.up = False
        #: Virtual time a pause ends (in the past when not paused).
        self.paused_until = 0.0
        #: What arrived while paused: (event kind, data, source address).
        self.inbox: deque[tuple[int, bytes, Address]] = deque()
        #: The deadline of the one timer event that counts; other timer events are stale.
        self.timer = float("inf")
        #: Counts boots and crashes; events scheduled for another life are void.
        self.life = 0
        #: Its tags, which survive a restart.
        self.tags = dict(tags)
        self.packets_sent = 0
        self.bytes_sent = 0
        self.frames_sent = 0

    def boot(self, core: NodeCore) -> None:
        """Start a new life running ``core``: up, unpaused, nothing buffered."""
        self.core = core
        self.up = True
        self.paused_until = 0.0
        self.inbox.clear()
        self.life += 1
        self.timer = float("inf")

    def crash(self) -> None:
        """End this life at once: what is queued for it or buffered is lost."""
        self.up = False
        self.inbox.clear()
        self.life += 1

    def pause(self, until: float) -> float:
        """Freeze until ``until`` (or longer, if already paused longer).

        Returns:
            The virtual time the pause now ends.
        """
        self.paused_until = max(self.paused_until, until)
        return self.paused_until

    def resume(self, now: float) -> None:
        """End a pause: the core handles everything that arrived meanwhile, then its timer."""
        core = self.core
        assert core is not None
        while self.inbox:
            kind, data, addr = self.inbox.popleft()
            if kind == DATAGRAM:
                core.receive_datagram(data, addr, now)
            elif kind == FRAME:
                core.receive_frame(data, addr, now)
            elif core.stealing is not None and data in core.stealing.running_ids():
                core.task_done(data, TaskOutcome.returned(None), now)
        self.timer = float("inf")
        core.handle_timer(now)


@dataclass(frozen=True, slots=True)
class SimSettings:
    """What every node core of one simulation is built with."""

    #: The mesh name.
    mesh: str
    #: Protocol timing.
    timing: Timing
    #: Signature scheme.
    signatures: SignatureScheme
    #: Task slots per node; 0 means no work-stealing core.
    slots: int
    #: Work-stealing periods and bounds.
    stealing: StealingTiming
    #: Mixed with each node's index and epoch to seed its protocol randomness.
    protocol_seed: int


def assemble_core(config: SimSettings, node: SimNode, now: float) -> NodeCore:
    """Build the core of ``node``'s next life: membership, plus work stealing with slots.

    Its identity comes from the node's seed and epoch, its randomness from the protocol
    seed, index and epoch, so a restart is as deterministic as the first boot.

    Args:
        config: the simulation's settings.
        node: the node about to boot (its tags are the core's initial tags).
        now: virtual time.

    Returns:
        A core that knows nobody yet.
    """
    identity = Identity.from_seed(node.seed, epoch=node.epoch)
    rng = random.Random(config.protocol_seed ^ (node.index << 20) ^ node.epoch)
    tasks = None
    if config.slots > 0:
        tasks = TaskSetup(can_run=frozenset({SIM_TASK}), slots=config.slots, timing=config.stealing)
    core_config = CoreConfig(
        mesh=config.mesh,
        address=address(node.index),
        timing=config.timing,
        tags=node.tags,
        signatures=config.signatures,
        tasks=tasks,
    )
    return NodeCore.create(identity, core_config, rng, now)
