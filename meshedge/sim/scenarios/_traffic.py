"""Bandwidth: what each node sends per second in steady state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...core._timing import Timing
from .._simulation import Simulation
from ._conventions import DEFAULT_WARMUP, check_loss, check_nodes, check_positive, needed

__all__ = ["BandwidthResult", "bandwidth"]


def _nearest_rank(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[needed(fraction, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class BandwidthResult:
    """Bytes per second each node sent (datagrams and anti-entropy frames)."""

    #: Mesh size.
    nodes: int
    #: Datagram loss of the network.
    loss: float
    #: The simulation's seed.
    seed: int
    #: Virtual seconds measured (after the warm-up).
    duration: float
    #: Mean over nodes, bytes per second.
    mean_bytes_per_second: float
    #: 99th percentile over nodes (nearest rank), bytes per second.
    p99_bytes_per_second: float
    #: The busiest node, bytes per second.
    max_bytes_per_second: float
    #: Mean over nodes, datagrams per second.
    mean_packets_per_second: float


def bandwidth(
    nodes: int,
    seed: int = 0,
    duration: float = 60.0,
    timing: Timing | None = None,
    *,
    loss: float = 0.0,
    warmup: float = DEFAULT_WARMUP,
) -> BandwidthResult:
    """Measure what each node sends in steady state.

    A prejoined mesh runs ``warmup`` seconds; the counters of
    :meth:`Simulation.statistics` are then read, the mesh runs ``duration`` seconds,
    and the difference divided by ``duration`` is each node's rate. No member joins,
    fails or changes tags meanwhile: this is the cost of probing, anti-entropy and (with
    loss) the suspicions and refutations that loss causes.

    Args:
        nodes: mesh size (at least 2).
        seed: seeds the simulation.
        duration: virtual seconds measured.
        timing: protocol timing (``Timing.lan()`` by default).
        loss: probability that the network drops a datagram.
        warmup: virtual seconds before measuring.

    Returns:
        Mean, 99th percentile and maximum bytes per second per node.

    Raises:
        LocalProtocolError: fewer than 2 nodes, a loss outside [0, 1), or a
            non-positive duration or warm-up.
    """
    check_nodes(nodes, 2)
    check_loss(loss)
    check_positive("duration", duration)
    check_positive("warmup", warmup)
    sim = Simulation(nodes, seed=seed, timing=timing or Timing.lan(), loss=loss, prejoined=True)
    sim.run_for(warmup)
    before = sim.statistics()
    sim.run_for(duration)
    after = sim.statistics()
    rates = [(b - a) / duration for a, b in zip(before.bytes_sent, after.bytes_sent, strict=True)]
    packets = sum(after.packets_sent) - sum(before.packets_sent)
    return BandwidthResult(
        nodes=nodes,
        loss=loss,
        seed=seed,
        duration=duration,
        mean_bytes_per_second=sum(rates) / nodes,
        p99_bytes_per_second=_nearest_rank(rates, 0.99),
        max_bytes_per_second=max(rates),
        mean_packets_per_second=packets / nodes / duration,
    )
