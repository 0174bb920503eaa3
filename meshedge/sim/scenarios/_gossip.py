"""Dissemination: how fast one node's change reaches the others, next to Serf's model.

:func:`dissemination` measures it on the simulator; :func:`convergence_model` gives what
Serf's convergence model of push gossip predicts for the same size, fanout, gossip
interval and loss.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from ...core._events import MemberJoined, MemberRecovered, MemberUpdated
from ...core._timing import Timing
from .._simulation import Simulation, SimulationTimeout
from ._conventions import (
    CHECK_EVERY,
    DEFAULT_WARMUP,
    check_loss,
    check_nodes,
    check_positive,
    needed,
)

__all__ = ["ConvergenceModel", "DisseminationResult", "convergence_model", "dissemination"]


@dataclass(frozen=True, slots=True)
class ConvergenceModel:
    """Serf's convergence model of push gossip, for one mesh size, fanout and loss.

    ``infected(r) = n / (1 + (n + 1) * exp(-beta * n * r))`` nodes know an update after
    ``r`` gossip rounds, with ``beta = fanout / n * (1 - loss) * 0.5``. A fraction ``f``
    counts as reached when ``infected(r) >= ceil(f * n) - 0.5`` (so 100 % is
    ``n - 0.5``, and 99.99 % of 1000 nodes is all of them, as when counting nodes).
    Times are rounds times the gossip interval.
    """

    #: Mesh size ``n``.
    nodes: int
    #: Members each gossip round sends to.
    fanout: int
    #: Probability that a datagram is lost.
    loss: float
    #: Seconds per gossip round.
    gossip_interval: float
    #: Seconds until 99 % of the nodes know.
    seconds_99: float
    #: Seconds until 99.99 % of the nodes know.
    seconds_9999: float
    #: Seconds until every node knows.
    seconds_all: float
    #: The lower bound of any push gossip: ``log_(fanout + 1)(n)`` rounds, in seconds.
    lower_bound: float

    def rounds(self, seconds: float) -> float:
        """Convert seconds into gossip rounds."""
        return seconds / self.gossip_interval


def _model_rounds(nodes: int, beta_n: float, infected: float) -> float:
    """Rounds until the logistic model has ``infected`` nodes (0 if it starts there)."""
    if infected <= nodes / (nodes + 2):  # infected(0): the origin alone
        return 0.0
    if beta_n <= 0:
        return math.inf
    return math.log((nodes + 1) * infected / (nodes - infected)) / beta_n


def convergence_model(
    nodes: int, timing: Timing | None = None, loss: float = 0.0
) -> ConvergenceModel:
    """Serf's convergence model for ``nodes`` nodes with ``timing``'s gossip settings.

    Args:
        nodes: mesh size.
        timing: gives the gossip interval and fanout (``Timing.lan()`` by default).
        loss: probability that a datagram is lost.

    Returns:
        The modelled times to reach 99 %, 99.99 % and 100 % of the nodes, and the lower
        bound ``log_(fanout + 1)(nodes)`` rounds, all in seconds.

    Raises:
        LocalProtocolError: fewer than 1 node, or a loss outside [0, 1).
    """
    check_nodes(nodes, 1)
    check_loss(loss)
    timing = timing or Timing.lan()
    fanout = timing.gossip_nodes
    beta_n = fanout * (1.0 - loss) * 0.5  # beta * n
    interval = timing.gossip_interval

    def seconds(fraction: float) -> float:
        infected = needed(fraction, nodes) - 0.5
        return _model_rounds(nodes, beta_n, infected) * interval

    return ConvergenceModel(
        nodes=nodes,
        fanout=fanout,
        loss=loss,
        gossip_interval=interval,
        seconds_99=seconds(0.99),
        seconds_9999=seconds(0.9999),
        seconds_all=seconds(1.0),
        lower_bound=math.log(nodes) / math.log(fanout + 1) * interval,
    )


@dataclass(frozen=True, slots=True)
class DisseminationResult:
    """How fast one node's tag change reached the others (seconds after ``set_tags``).

    Counts include the node that made the change, which knows at once. A time is
    ``math.inf`` when that share was not reached within the scenario's timeout.
    """

    #: Mesh size.
    nodes: int
    #: Datagram loss of the network.
    loss: float
    #: The simulation's seed.
    seed: int
    #: Seconds until 99 % of the nodes knew.
    informed_99: float
    #: Seconds until 99.99 % of the nodes knew.
    informed_9999: float
    #: Seconds until every node knew.
    all_informed: float
    #: Nodes that knew when the scenario ended (``nodes`` unless it timed out).
    informed: int
    #: Serf's model for the same size, fanout, gossip interval and loss.
    model: ConvergenceModel


def dissemination(
    nodes: int,
    loss: float = 0.0,
    seed: int = 0,
    timing: Timing | None = None,
    *,
    warmup: float = DEFAULT_WARMUP,
    timeout: float = 60.0,
) -> DisseminationResult:
    """Measure how fast a change of one node's tags reaches every node.

    A prejoined mesh runs ``warmup`` seconds; then node 0 calls ``set_tags``. A node has
    learned the change when it emits a member event (``MemberUpdated``, or
    ``MemberRecovered`` if it suspected node 0 at the time) carrying the new tags.

    Args:
        nodes: mesh size (at least 2).
        loss: probability that the network drops a datagram.
        seed: seeds the simulation.
        timing: protocol timing (``Timing.lan()`` by default).
        warmup: virtual seconds before the change.
        timeout: virtual seconds to wait for the last node.

    Returns:
        The measured times, with Serf's model for comparison.

    Raises:
        LocalProtocolError: fewer than 2 nodes, a loss outside [0, 1), or a
            non-positive warm-up or timeout.
    """
    check_nodes(nodes, 2)
    check_loss(loss)
    check_positive("warmup", warmup)
    check_positive("timeout", timeout)
    timing = timing or Timing.lan()
    sim = Simulation(nodes, seed=seed, timing=timing, loss=loss, prejoined=True)
    sim.run_for(warmup)
    times = _times_to_learn(sim, {"scenario": "dissemination", "generation": "2"}, timeout)

    def reached(fraction: float) -> float:
        count = needed(fraction, nodes)
        return times[count - 1] if count <= len(times) else math.inf

    return DisseminationResult(
        nodes=nodes,
        loss=loss,
        seed=seed,
        informed_99=reached(0.99),
        informed_9999=reached(0.9999),
        all_informed=reached(1.0),
        informed=len(times),
        model=convergence_model(nodes, timing, loss),
    )


def _times_to_learn(sim: Simulation, new_tags: dict[str, str], timeout: float) -> list[float]:
    """Node 0 sets ``new_tags``: seconds until each node knew, in order (node 0 first, at 0)."""
    origin = sim.node_ids[0]
    others = len(sim.node_ids) - 1
    learned: dict[int, float] = {}

    def listen(index: int, event: object, when: float) -> None:
        if (
            isinstance(event, MemberUpdated | MemberRecovered | MemberJoined)
            and event.member.id == origin
            and dict(event.member.tags) == new_tags
        ):
            learned.setdefault(index, when)

    sim.on_event(listen)
    sim.set_tags(0, new_tags)
    start = sim.now
    with contextlib.suppress(SimulationTimeout):
        sim.run_until(lambda: len(learned) >= others, timeout, check_every=CHECK_EVERY)
    return [0.0, *sorted(when - start for when in learned.values())]
