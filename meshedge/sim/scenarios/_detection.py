"""Failure detection: how fast the mesh notices a crashed node, next to SWIM's expectation."""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass

from ..._errors import LocalProtocolError
from ..._identity import NodeId
from ...core._events import MemberFailed, MemberSuspected
from ...core._timing import Timing
from .._simulation import Simulation, SimulationTimeout
from ._conventions import CHECK_EVERY, DEFAULT_WARMUP, check_loss, check_nodes, check_positive

__all__ = ["SWIM_FIRST_DETECTION_PERIODS", "FailureDetectionResult", "failure_detection"]

#: SWIM's expected number of protocol periods until some member first probes a failed
#: member: e / (e - 1) (Das et al. 2002, §3.1).
SWIM_FIRST_DETECTION_PERIODS = math.e / (math.e - 1)


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
    check_nodes(nodes, crashes + 2)
    check_loss(loss)
    check_positive("warmup", warmup)
    timing = timing or Timing.lan()
    if timeout is None:
        timeout = 2 * timing.suspicion_timeouts(nodes)[1] + 10 * timing.probe_interval
    check_positive("timeout", timeout)
    sim = Simulation(nodes, seed=seed, timing=timing, loss=loss, prejoined=True)
    sim.run_for(warmup)
    watch = _CrashWatch(alive=nodes)
    sim.on_event(watch.listen)
    measured = []
    for victim in random.Random(seed).sample(range(1, nodes), crashes):
        measured.append(watch.time_crash(sim, victim, timeout))
        sim.run_for(timing.probe_interval)
    first_suspicion, first_dead, all_dead = zip(*measured, strict=True)
    return FailureDetectionResult(
        nodes=nodes,
        seed=seed,
        probe_interval=timing.probe_interval,
        first_suspicion=first_suspicion,
        first_dead=first_dead,
        all_dead=all_dead,
    )


class _CrashWatch:
    """Suspicions and deaths of the one crashed node being watched, by observer."""

    def __init__(self, alive: int) -> None:
        self.alive = alive  # live nodes: those that must declare the crashed one dead
        self.target: NodeId | None = None
        self.suspected: float | None = None  # time of the first suspicion, anywhere
        self.dead: dict[int, float] = {}  # observer index: time it declared the death

    def listen(self, index: int, event: object, when: float) -> None:
        if self.target is None or not isinstance(event, MemberSuspected | MemberFailed):
            return
        if event.member.id != self.target:
            return
        if isinstance(event, MemberSuspected):
            if self.suspected is None:
                self.suspected = when
        else:
            self.dead.setdefault(index, when)

    def everyone_knows(self) -> bool:
        return len(self.dead) >= self.alive

    def time_crash(
        self, sim: Simulation, victim: int, timeout: float
    ) -> tuple[float, float, float]:
        """Crash ``victim``; seconds to the first suspicion, first death and last death."""
        self.target = sim.node_ids[victim]
        self.suspected = None
        self.dead.clear()
        sim.crash(victim)
        self.alive -= 1
        start = sim.now
        with contextlib.suppress(SimulationTimeout):
            sim.run_until(self.everyone_knows, timeout, check_every=CHECK_EVERY)
        dead = self.dead
        return (
            self.suspected - start if self.suspected is not None else math.inf,
            min(dead.values()) - start if dead else math.inf,
            max(dead.values()) - start if self.everyone_knows() else math.inf,
        )
