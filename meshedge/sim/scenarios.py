"""Measured scenarios: the membership figures a user sizes a mesh with, in virtual time.

Each function builds a :class:`~meshedge.sim.Simulation` (which drives the real protocol
cores), provokes one situation — a tag change, a crash, a frozen node on a lossy
network, steady state, a partition — and returns a small frozen dataclass of figures.
Everything is measured on the simulator's virtual clock, so a figure depends only on the
arguments and the seed, never on the speed of the machine.

The figures, and the goals the project holds them to (``benchmarks/membership.py``
prints them side by side):

- :func:`dissemination`: how long a change takes to reach 99 %, 99.99 % and 100 % of
  the nodes, next to Serf's convergence model (:func:`convergence_model`).
- :func:`failure_detection`: how long after a crash the first node suspects the dead
  node, next to SWIM's expectation, and how long until every live node has it dead.
- :func:`false_positives`: healthy nodes declared dead while one node keeps freezing on
  a lossy network, with Lifeguard and with plain SWIM.
- :func:`bandwidth`: bytes per second each node sends in steady state.
- :func:`partition_heal`: how long a mesh split in two halves takes to become one again.

Example:
    >>> from meshedge.sim.scenarios import dissemination
    >>> result = dissemination(nodes=50, loss=0.0, seed=1)
    >>> result.all_informed < 1.0
    True

The module is sans-I/O like the rest of :mod:`meshedge.sim`: the wall-clock speed of
the simulator is measured by ``benchmarks/membership.py``, not here.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.events import (
    MemberFailed,
    MemberJoined,
    MemberRecovered,
    MemberSuspected,
    MemberUpdated,
)
from ..core.timing import Timing
from ..errors import LocalProtocolError
from ..identity import NodeId
from .simulation import Simulation, SimulationTimeout

__all__ = [
    "BandwidthResult",
    "ConvergenceModel",
    "DisseminationResult",
    "FailureDetectionResult",
    "FalsePositiveComparison",
    "FalsePositiveResult",
    "PartitionHealResult",
    "bandwidth",
    "convergence_model",
    "dissemination",
    "failure_detection",
    "false_positive_run",
    "false_positives",
    "partition_heal",
]

#: Virtual seconds every scenario runs a prejoined mesh before measuring, so that the
#: first probe, gossip and anti-entropy rounds (spread over one period at start) settle.
DEFAULT_WARMUP = 5.0
#: How often (virtual seconds) ``run_until`` checks a scenario's stop condition; the
#: finest resolution of a measured time that is not taken from an event's timestamp.
CHECK_EVERY = 0.01
#: SWIM's expected number of protocol periods until some member first probes a failed
#: member: e / (e - 1) (Das et al. 2002, §3.1).
SWIM_FIRST_DETECTION_PERIODS = math.e / (math.e - 1)


def _check_nodes(nodes: int, least: int) -> None:
    if not isinstance(nodes, int) or nodes < least:
        raise LocalProtocolError(f"this scenario needs at least {least} nodes, not {nodes!r}")


def _check_loss(loss: float) -> None:
    if not 0.0 <= loss < 1.0:
        raise LocalProtocolError(f"loss is a probability in [0, 1), not {loss!r}")


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise LocalProtocolError(f"{name} must be a positive number of seconds, not {value!r}")


def _needed(fraction: float, nodes: int) -> int:
    """Nodes that make up ``fraction`` of ``nodes``, rounded up (99.99 % of 1000 is all)."""
    return min(nodes, max(1, math.ceil(fraction * nodes - 1e-9)))


# --------------------------------------------------------------------------- dissemination


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
    _check_nodes(nodes, 1)
    _check_loss(loss)
    timing = timing or Timing.lan()
    fanout = timing.gossip_nodes
    beta_n = fanout * (1.0 - loss) * 0.5  # beta * n
    interval = timing.gossip_interval

    def seconds(fraction: float) -> float:
        infected = _needed(fraction, nodes) - 0.5
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
    _check_nodes(nodes, 2)
    _check_loss(loss)
    _check_positive("warmup", warmup)
    _check_positive("timeout", timeout)
    timing = timing or Timing.lan()
    sim = Simulation(nodes, seed=seed, timing=timing, loss=loss, prejoined=True)
    sim.run_for(warmup)
    origin = sim.node_ids[0]
    new_tags = {"scenario": "dissemination", "generation": "2"}
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
        sim.run_until(lambda: len(learned) >= nodes - 1, timeout, check_every=CHECK_EVERY)
    # The origin knows at 0; the others in the order they learned.
    times = [0.0, *sorted(when - start for when in learned.values())]

    def reached(fraction: float) -> float:
        count = _needed(fraction, nodes)
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


# --------------------------------------------------------------------------- failure detection


@dataclass(frozen=True, slots=True)
class FailureDetectionResult:
    """How fast the mesh noticed crashed nodes (seconds after each crash).

    One entry per crash in ``first_suspicion`` and ``all_dead``; ``math.inf`` means the
    scenario's timeout passed first.
    """

    #: Mesh size before the crashes.
    nodes: int
    #: The simulation's seed.
    seed: int
    #: The probe interval of the timing used.
    probe_interval: float
    #: Per crash: seconds until the first ``MemberSuspected`` about it, anywhere.
    first_suspicion: tuple[float, ...]
    #: Per crash: seconds until the first ``MemberFailed`` about it, anywhere.
    first_dead: tuple[float, ...]
    #: Per crash: seconds until every live node had it dead (``MemberFailed``).
    all_dead: tuple[float, ...]

    @property
    def expected_first_suspicion(self) -> float:
        """SWIM's expected time to first detection: e / (e - 1) probe intervals."""
        return SWIM_FIRST_DETECTION_PERIODS * self.probe_interval

    @property
    def mean_first_suspicion(self) -> float:
        """The mean of :attr:`first_suspicion`."""
        return sum(self.first_suspicion) / len(self.first_suspicion)

    @property
    def worst_all_dead(self) -> float:
        """The largest of :attr:`all_dead`."""
        return max(self.all_dead)


def failure_detection(
    nodes: int,
    seed: int = 0,
    timing: Timing | None = None,
    *,
    crashes: int = 1,
    loss: float = 0.0,
    warmup: float = DEFAULT_WARMUP,
    timeout: float | None = None,
) -> FailureDetectionResult:
    """Crash nodes one at a time and time their detection.

    A prejoined mesh runs ``warmup`` seconds. Then, ``crashes`` times: a node chosen with
    the seed crashes, and the scenario runs until every live node has emitted
    ``MemberFailed`` about it (then a further probe interval, so crashes do not overlap).

    Args:
        nodes: mesh size (at least ``crashes + 2``).
        seed: seeds the simulation and the choice of crashed nodes.
        timing: protocol timing (``Timing.lan()`` by default).
        crashes: how many nodes crash, one after the other.
        loss: probability that the network drops a datagram.
        warmup: virtual seconds before the first crash.
        timeout: virtual seconds to wait for each death to reach every node; by default
            twice the longest suspicion timeout plus ten probe intervals.

    Returns:
        Per crash, the time to the first suspicion, first death and last death.

    Raises:
        LocalProtocolError: too few nodes, a loss outside [0, 1), or a non-positive
            warm-up or timeout.
    """
    if not isinstance(crashes, int) or crashes < 1:
        raise LocalProtocolError(f"crashes must be a positive integer, not {crashes!r}")
    _check_nodes(nodes, crashes + 2)
    _check_loss(loss)
    _check_positive("warmup", warmup)
    timing = timing or Timing.lan()
    if timeout is None:
        timeout = 2 * timing.suspicion_timeouts(nodes)[1] + 10 * timing.probe_interval
    _check_positive("timeout", timeout)
    sim = Simulation(nodes, seed=seed, timing=timing, loss=loss, prejoined=True)
    sim.run_for(warmup)
    victims = random.Random(seed).sample(range(1, nodes), crashes)
    target: list[NodeId] = []  # the node currently watched (a one-item box)
    suspected: list[float] = []
    dead: dict[int, float] = {}

    def listen(index: int, event: object, when: float) -> None:
        if not target or not isinstance(event, MemberSuspected | MemberFailed):
            return
        if event.member.id != target[0]:
            return
        if isinstance(event, MemberSuspected):
            if not suspected:
                suspected.append(when)
        else:
            dead.setdefault(index, when)

    sim.on_event(listen)
    alive = [nodes]  # live nodes (a one-item box, read by the predicate)

    def everyone_knows() -> bool:
        return len(dead) >= alive[0]

    first_suspicion: list[float] = []
    first_dead: list[float] = []
    all_dead: list[float] = []
    for victim in victims:
        target[:] = [sim.node_ids[victim]]
        suspected.clear()
        dead.clear()
        sim.crash(victim)
        alive[0] -= 1
        start = sim.now
        with contextlib.suppress(SimulationTimeout):
            sim.run_until(everyone_knows, timeout, check_every=CHECK_EVERY)
        first_suspicion.append(suspected[0] - start if suspected else math.inf)
        first_dead.append(min(dead.values()) - start if dead else math.inf)
        all_dead.append(max(dead.values()) - start if everyone_knows() else math.inf)
        sim.run_for(timing.probe_interval)
    return FailureDetectionResult(
        nodes=nodes,
        seed=seed,
        probe_interval=timing.probe_interval,
        first_suspicion=tuple(first_suspicion),
        first_dead=tuple(first_dead),
        all_dead=tuple(all_dead),
    )


# --------------------------------------------------------------------------- false positives


@dataclass(frozen=True, slots=True)
class FalsePositiveResult:
    """Suspicions and deaths of healthy nodes while one node keeps freezing.

    Healthy means every node but the frozen one (node 0). An *event* is one node's
    ``MemberSuspected`` or ``MemberFailed`` about a healthy member.
    """

    #: Whether the Lifeguard refinements were on.
    lifeguard: bool
    #: Mesh size.
    nodes: int
    #: Datagram loss of the network.
    loss: float
    #: Virtual seconds measured.
    duration: float
    #: ``MemberFailed`` events about healthy members, summed over all observers.
    false_deaths: int
    #: Distinct healthy members that some node declared dead.
    healthy_declared_dead: int
    #: ``MemberSuspected`` events about healthy members, summed over all observers.
    suspicions: int
    #: Distinct suspicions of healthy members: different (member, epoch, incarnation)
    #: that some node suspected. Each one cost a refutation.
    suspicion_episodes: int
    #: ``MemberSuspected`` events about the frozen node (expected: it does not answer).
    frozen_node_suspicions: int
    #: ``MemberFailed`` events about the frozen node.
    frozen_node_deaths: int


@dataclass(frozen=True, slots=True)
class FalsePositiveComparison:
    """The same freezing scenario with Lifeguard and with plain SWIM."""

    #: With Lifeguard (``Timing(lifeguard=True)``).
    lifeguard: FalsePositiveResult
    #: Plain SWIM (``Timing(lifeguard=False)``).
    swim: FalsePositiveResult

    @property
    def death_ratio(self) -> float | None:
        """SWIM's false deaths per Lifeguard false death (None if Lifeguard had none)."""
        if self.lifeguard.false_deaths == 0:
            return None
        return self.swim.false_deaths / self.lifeguard.false_deaths

    @property
    def suspicion_ratio(self) -> float | None:
        """SWIM's suspicion episodes per Lifeguard one (None if Lifeguard had none)."""
        if self.lifeguard.suspicion_episodes == 0:
            return None
        return self.swim.suspicion_episodes / self.lifeguard.suspicion_episodes


def false_positive_run(
    nodes: int = 100,
    loss: float = 0.10,
    seed: int = 0,
    timing: Timing | None = None,
    *,
    duration: float = 600.0,
    freeze: float = 2.0,
    every: float = 10.0,
    warmup: float = DEFAULT_WARMUP,
) -> FalsePositiveResult:
    """Freeze node 0 for ``freeze`` seconds every ``every`` seconds on a lossy network.

    Models a device whose process stalls (garbage collection, swapping, a busy CPU): it
    neither answers nor probes while frozen, then handles what it missed at once. Counts
    what the others and the frozen node itself conclude about healthy members. Whether
    Lifeguard is on is ``timing.lifeguard``.

    Args:
        nodes: mesh size (at least 3).
        loss: probability that the network drops a datagram.
        seed: seeds the simulation.
        timing: protocol timing (``Timing.lan()`` by default).
        duration: virtual seconds measured, after the warm-up.
        freeze: seconds of each freeze.
        every: seconds from the start of one freeze to the start of the next.
        warmup: virtual seconds before measuring (no freezes).

    Returns:
        Counts of suspicions and deaths of healthy members, and of the frozen one.

    Raises:
        LocalProtocolError: fewer than 3 nodes, a loss outside [0, 1), a freeze not
            shorter than its period, or a non-positive duration.
    """
    _check_nodes(nodes, 3)
    _check_loss(loss)
    for name, value in (("duration", duration), ("freeze", freeze), ("every", every)):
        _check_positive(name, value)
    _check_positive("warmup", warmup)
    if freeze >= every:
        raise LocalProtocolError("a freeze must be shorter than the period between freezes")
    timing = timing or Timing.lan()
    sim = Simulation(nodes, seed=seed, timing=timing, loss=loss, prejoined=True)
    sim.run_for(warmup)
    frozen = sim.node_ids[0]
    counts = {"suspect": 0, "dead": 0, "frozen_suspect": 0, "frozen_dead": 0}
    declared_dead: set[NodeId] = set()
    episodes: set[tuple[NodeId, int, int]] = set()

    def listen(index: int, event: object, when: float) -> None:
        if isinstance(event, MemberSuspected):
            member = event.member
            if member.id == frozen:
                counts["frozen_suspect"] += 1
            else:
                counts["suspect"] += 1
                episodes.add((member.id, member.epoch, member.incarnation))
        elif isinstance(event, MemberFailed):
            if event.member.id == frozen:
                counts["frozen_dead"] += 1
            else:
                counts["dead"] += 1
                declared_dead.add(event.member.id)

    sim.on_event(listen)
    end = sim.now + duration
    while sim.now < end:
        sim.pause(0, min(freeze, end - sim.now))
        sim.run_for(min(every, end - sim.now))
    return FalsePositiveResult(
        lifeguard=timing.lifeguard,
        nodes=nodes,
        loss=loss,
        duration=duration,
        false_deaths=counts["dead"],
        healthy_declared_dead=len(declared_dead),
        suspicions=counts["suspect"],
        suspicion_episodes=len(episodes),
        frozen_node_suspicions=counts["frozen_suspect"],
        frozen_node_deaths=counts["frozen_dead"],
    )


def false_positives(
    nodes: int = 100,
    loss: float = 0.10,
    seed: int = 0,
    timing: Timing | None = None,
    *,
    duration: float = 600.0,
    freeze: float = 2.0,
    every: float = 10.0,
    warmup: float = DEFAULT_WARMUP,
) -> FalsePositiveComparison:
    """Run :func:`false_positive_run` with Lifeguard on and off (same seed).

    ``timing.lifeguard`` is ignored: each run sets it. See :func:`false_positive_run`
    for the arguments.

    Returns:
        Both runs, and the ratios of plain SWIM's counts to Lifeguard's.
    """
    timing = timing or Timing.lan()
    runs = [
        false_positive_run(
            nodes,
            loss,
            seed,
            timing.with_(lifeguard=lifeguard),
            duration=duration,
            freeze=freeze,
            every=every,
            warmup=warmup,
        )
        for lifeguard in (True, False)
    ]
    return FalsePositiveComparison(lifeguard=runs[0], swim=runs[1])


# --------------------------------------------------------------------------- bandwidth


def _nearest_rank(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[_needed(fraction, len(ordered)) - 1]


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
    _check_nodes(nodes, 2)
    _check_loss(loss)
    _check_positive("duration", duration)
    _check_positive("warmup", warmup)
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


# --------------------------------------------------------------------------- partition


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
    _check_nodes(nodes, 2)
    _check_loss(loss)
    _check_positive("partition", partition)
    _check_positive("warmup", warmup)
    timing = timing or Timing.lan()
    if timeout is None:
        timeout = 20 * timing.reconnect_interval
    _check_positive("timeout", timeout)
    sim = Simulation(nodes, seed=seed, timing=timing, loss=loss, prejoined=True)
    sim.run_for(warmup)
    half = nodes // 2
    sim.partition(range(half), range(half, nodes))
    split_at = sim.now
    try:
        separated = sim.run_until(sim.converged, partition, check_every=CHECK_EVERY * 10)
    except SimulationTimeout:
        separated = math.inf
    sim.run_for(split_at + partition - sim.now)
    sim.heal()
    try:
        healed = sim.run_until(sim.converged, timeout, check_every=CHECK_EVERY * 10)
    except SimulationTimeout:
        healed = math.inf
    return PartitionHealResult(
        nodes=nodes,
        halves=(half, nodes - half),
        partition=partition,
        seed=seed,
        separated=separated,
        healed=healed,
    )
