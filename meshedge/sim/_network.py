"""The virtual network of a simulation: the event queue, addresses, links and their faults.

Every datagram, frame, timer, resume and task completion is an event on one heap,
ordered by virtual time with ties broken by the order of scheduling: that order makes a
run deterministic for a seed. A datagram or frame between two nodes is dropped when no
node has the destination address, when a partition separates the two, or (datagrams
only: frames model a reliable stream) when the loss of the network or of the link
strikes; otherwise it arrives after a latency drawn uniformly from ``(lo, hi)``.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from .._errors import LocalProtocolError
from ..core._member import Address

if TYPE_CHECKING:
    from ._node import SimNode

__all__ = [
    "DATAGRAM",
    "FRAME",
    "PORT",
    "RESUME",
    "TASK_DONE",
    "TIMER",
    "Event",
    "VirtualNetwork",
    "address",
    "check_probability",
]

#: Kinds of event on the queue: a node's timer, a datagram, a stream frame, the end of a
#: pause, the end of a task run.
TIMER, DATAGRAM, FRAME, RESUME, TASK_DONE = range(5)
#: The port of every virtual address.
PORT = 7946

#: One queued event: (time, scheduling order, kind, node index, node life, data, source
#: address). The life is the target node's at scheduling time: an event for an earlier
#: life (before a crash or restart) is void.
Event: TypeAlias = tuple[float, int, int, int, int, Any, Address | None]


def address(index: int) -> Address:
    """The virtual address of node ``index``."""
    return (f"n{index}", PORT)


def check_probability(probability: float) -> float:
    """Return ``probability`` if it is a loss probability.

    Raises:
        LocalProtocolError: it is not between 0 and 1.
    """
    if not 0.0 <= probability <= 1.0:
        raise LocalProtocolError("loss is a probability between 0 and 1")
    return probability


class VirtualNetwork:
    """The event queue, and the links between simulated nodes with their faults.

    Args:
        nodes: the simulated nodes, by index (each event records its target's life).
        rng: draws every latency and loss.
        latency: one-way delay of every datagram and frame, uniform in ``(lo, hi)`` s.
        loss: probability that a datagram is dropped.
    """

    __slots__ = (
        "queue",
        "latency",
        "loss",
        "groups",
        "drops",
        "_nodes",
        "_by_address",
        "_link_loss",
        "_rng",
        "_sequence",
    )

    def __init__(
        self,
        nodes: Sequence[SimNode],
        rng: random.Random,
        latency: tuple[float, float],
        loss: float,
    ) -> None:
        #: Pending events, a heap ordered by time then scheduling order.
        self.queue: list[Event] = []
        #: One-way delay, uniform in ``(lo, hi)`` seconds.
        self.latency = latency
        #: Probability that a datagram is dropped, on every link.
        self.loss = check_probability(loss)
        #: Partition group of each node, or None when every node reaches every other.
        self.groups: list[int] | None = None
        #: Datagrams and frames dropped, by cause.
        self.drops = {"loss": 0, "partition": 0, "down": 0, "buffer": 0}
        self._nodes = nodes
        self._by_address = {address(i): i for i in range(len(nodes))}
        self._link_loss: dict[tuple[int, int], float] = {}
        self._rng = rng
        self._sequence = 0

    def push(self, when: float, kind: int, node: SimNode, data: Any, addr: Address | None) -> None:
        """Schedule an event of ``kind`` for the current life of ``node``."""
        self._sequence += 1
        heapq.heappush(self.queue, (when, self._sequence, kind, node.index, node.life, data, addr))

    def transmit(
        self, sender: SimNode, kind: int, data: bytes, addr: Address, source: Address, now: float
    ) -> None:
        """Send a datagram or frame from ``sender`` to ``addr``: queue it or drop it."""
        target_index = self._by_address.get(addr)
        if target_index is None:
            self.drops["down"] += 1
            return
        groups = self.groups
        if groups is not None and groups[sender.index] != groups[target_index]:
            self.drops["partition"] += 1
            return
        rng = self._rng
        if kind == DATAGRAM:
            loss = self.loss
            link = self._link_loss.get(
                (min(sender.index, target_index), max(sender.index, target_index))
            )
            if link:
                loss = 1 - (1 - loss) * (1 - link)
            if loss and rng.random() < loss:
                self.drops["loss"] += 1
                return
        lo, hi = self.latency
        self.push(now + rng.uniform(lo, hi), kind, self._nodes[target_index], data, source)

    def reachable(self, a: int, b: int) -> bool:
        """True if no partition separates nodes ``a`` and ``b`` (loss aside)."""
        groups = self.groups
        return groups is None or groups[a] == groups[b]

    def group(self, index: int) -> int:
        """The partition group of node ``index`` (0 for all when there is no partition)."""
        return self.groups[index] if self.groups is not None else 0

    def partition(self, groups: Sequence[Iterable[int]]) -> None:
        """Split the nodes into ``groups``; nodes not named form one more group."""
        assignment = [len(groups)] * len(self._nodes)
        for number, group in enumerate(groups):
            for index in group:
                assignment[index] = number
        self.groups = assignment

    def heal(self) -> None:
        """Remove every partition (loss settings stay)."""
        self.groups = None

    def set_link_loss(self, a: int, b: int, probability: float) -> None:
        """Extra datagram loss on the link between nodes ``a`` and ``b``, both ways."""
        self._link_loss[(min(a, b), max(a, b))] = check_probability(probability)
