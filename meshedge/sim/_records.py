"""What a simulation records for its caller: deliveries, task runs, results, traffic.

These are plain values: the simulation appends them as its nodes emit events and start
tasks, and :meth:`~meshedge.sim.Simulation.statistics` builds a :class:`SimStatistics`
from its counters. Nothing here changes a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._identity import NodeId

__all__ = ["Delivery", "Execution", "SimStatistics", "TaskResult"]


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
