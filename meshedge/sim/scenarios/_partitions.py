"""Partitions: how long a mesh split in two halves takes to show it, and to become one again."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...core._timing import Timing
from .._simulation import Simulation, SimulationTimeout
from ._conventions import CHECK_EVERY, DEFAULT_WARMUP, check_loss, check_nodes, check_positive

__all__ = ["PartitionHealResult", "partition_heal"]


@dataclass(frozen=True, slots=True)
class PartitionHealResult:
    """A mesh split in two halves, then healed."""

    #: Mesh size.
    nodes: int
    #: Sizes of the two halves.
    halves: tuple[int, int]
    #: Virtual seconds the partition lasted.
    partition: float
    #: The simulation's seed.
    seed: int
    #: Seconds after the split until each half saw exactly itself alive (``math.inf``
    #: if not within the partition).
    separated: float
    #: Seconds after the heal until every node saw every node alive, with the same tags
    #: (:meth:`Simulation.converged`); ``math.inf`` if not within the timeout.
    healed: float


def partition_heal(
    nodes: int = 120,
    seed: int = 0,
    timing: Timing | None = None,
    *,
    partition: float = 120.0,
    loss: float = 0.0,
    warmup: float = DEFAULT_WARMUP,
    timeout: float | None = None,
) -> PartitionHealResult:
    """Split a mesh into two halves, heal it, and time the re-merge.

    A prejoined mesh runs ``warmup`` seconds, is split into nodes ``[0, n/2)`` and
    ``[n/2, n)`` for ``partition`` seconds (each half declares the other dead), then
    healed. Re-merging relies on the protocol alone: retries of dead members every
    reconnect interval and anti-entropy.

    Args:
        nodes: mesh size (at least 2).
        seed: seeds the simulation.
        timing: protocol timing (``Timing.lan()`` by default).
        partition: virtual seconds the halves cannot reach each other.
        loss: probability that the network drops a datagram.
        warmup: virtual seconds before the split.
        timeout: virtual seconds to wait for the re-merge; by default twenty reconnect
            intervals.

    Returns:
        How long the split took to show, and the heal to complete.

    Raises:
        LocalProtocolError: fewer than 2 nodes, a loss outside [0, 1), or a
            non-positive partition, warm-up or timeout.
    """
    check_nodes(nodes, 2)
    check_loss(loss)
    check_positive("partition", partition)
    check_positive("warmup", warmup)
    timing = timing or Timing.lan()
    if timeout is None:
        timeout = 20 * timing.reconnect_interval
    check_positive("timeout", timeout)
    sim = Simulation(nodes, seed=seed, timing=timing, loss=loss, prejoined=True)
    sim.run_for(warmup)
    half = nodes // 2
    sim.partition(range(half), range(half, nodes))
    split_at = sim.now
    separated = _time_to_converge(sim, partition)
    sim.run_for(split_at + partition - sim.now)
    sim.heal()
    healed = _time_to_converge(sim, timeout)
    return PartitionHealResult(
        nodes=nodes,
        halves=(half, nodes - half),
        partition=partition,
        seed=seed,
        separated=separated,
        healed=healed,
    )


def _time_to_converge(sim: Simulation, timeout: float) -> float:
    """Run until :meth:`Simulation.converged`: the seconds it took, or ``math.inf``."""
    try:
        return sim.run_until(sim.converged, timeout, check_every=CHECK_EVERY * 10)
    except SimulationTimeout:
        return math.inf
