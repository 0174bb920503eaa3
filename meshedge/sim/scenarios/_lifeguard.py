"""False positives: healthy nodes suspected or declared dead while one node keeps freezing.

:func:`false_positive_run` freezes node 0 over and over on a lossy network and counts
what every node concludes; :func:`false_positives` runs it with Lifeguard and with plain
SWIM, the comparison the Lifeguard refinements are judged by.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..._errors import LocalProtocolError
from ..._identity import NodeId
from ...core._events import MemberFailed, MemberSuspected
from ...core._timing import Timing
from .._simulation import Simulation
from ._conventions import DEFAULT_WARMUP, check_loss, check_nodes, check_positive

__all__ = [
    "FalsePositiveComparison",
    "FalsePositiveResult",
    "false_positive_run",
    "false_positives",
]


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
    check_nodes(nodes, 3)
    check_loss(loss)
    for name, value in (("duration", duration), ("freeze", freeze), ("every", every)):
        check_positive(name, value)
    check_positive("warmup", warmup)
    if freeze >= every:
        raise LocalProtocolError("a freeze must be shorter than the period between freezes")
    timing = timing or Timing.lan()
    sim = Simulation(nodes, seed=seed, timing=timing, loss=loss, prejoined=True)
    sim.run_for(warmup)
    verdicts = _Verdicts(frozen=sim.node_ids[0])
    sim.on_event(verdicts.listen)
    end = sim.now + duration
    while sim.now < end:
        sim.pause(0, min(freeze, end - sim.now))
        sim.run_for(min(every, end - sim.now))
    return verdicts.result(timing.lifeguard, nodes, loss, duration)


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


class _Verdicts:
    """What every node concludes about the frozen node and about the healthy ones."""

    def __init__(self, frozen: NodeId) -> None:
        self.frozen = frozen
        self.counts = {"suspect": 0, "dead": 0, "frozen_suspect": 0, "frozen_dead": 0}
        self.declared_dead: set[NodeId] = set()
        self.episodes: set[tuple[NodeId, int, int]] = set()

    def listen(self, index: int, event: object, when: float) -> None:
        if isinstance(event, MemberSuspected):
            member = event.member
            if member.id == self.frozen:
                self.counts["frozen_suspect"] += 1
            else:
                self.counts["suspect"] += 1
                self.episodes.add((member.id, member.epoch, member.incarnation))
        elif isinstance(event, MemberFailed):
            if event.member.id == self.frozen:
                self.counts["frozen_dead"] += 1
            else:
                self.counts["dead"] += 1
                self.declared_dead.add(event.member.id)

    def result(
        self, lifeguard: bool, nodes: int, loss: float, duration: float
    ) -> FalsePositiveResult:
        counts = self.counts
        return FalsePositiveResult(
            lifeguard=lifeguard,
            nodes=nodes,
            loss=loss,
            duration=duration,
            false_deaths=counts["dead"],
            healthy_declared_dead=len(self.declared_dead),
            suspicions=counts["suspect"],
            suspicion_episodes=len(self.episodes),
            frozen_node_suspicions=counts["frozen_suspect"],
            frozen_node_deaths=counts["frozen_dead"],
        )
