"""Measured scenarios: the membership figures a user sizes a mesh with, in virtual time.

Each function builds a :class:`~meshedge.sim.Simulation` (which drives the real protocol
cores), provokes one situation — a tag change, a crash, a frozen node on a lossy
network, steady state, a partition — and returns a small frozen dataclass of figures.
Everything is measured on the simulator's virtual clock, so a figure depends only on the
arguments and the seed, never on the speed of the machine.

The figures, and the goals the project holds them to (``benchmarks/membership.py``
prints them side by side), one module each:

- :func:`dissemination` (:mod:`.gossip`): how long a change takes to reach 99 %,
  99.99 % and 100 % of the nodes, next to Serf's convergence model
  (:func:`convergence_model`).
- :func:`failure_detection` (:mod:`.detection`): how long after a crash the first node
  suspects the dead node, next to SWIM's expectation, and how long until every live
  node has it dead.
- :func:`false_positives` (:mod:`.lifeguard`): healthy nodes declared dead while one
  node keeps freezing on a lossy network, with Lifeguard and with plain SWIM.
- :func:`bandwidth` (:mod:`.traffic`): bytes per second each node sends in steady state.
- :func:`partition_heal` (:mod:`.partitions`): how long a mesh split in two halves takes
  to become one again.

What they share (warm-up, check resolution, argument checks) is in :mod:`.conventions`.

Example:
    >>> from meshedge.sim.scenarios import dissemination
    >>> result = dissemination(nodes=50, loss=0.0, seed=1)
    >>> result.all_informed < 1.0
    True

The scenarios are sans-I/O like the rest of :mod:`meshedge.sim`: the wall-clock speed
of the simulator is measured by ``benchmarks/membership.py``, not here.
"""

from ._conventions import CHECK_EVERY as CHECK_EVERY
from ._conventions import DEFAULT_WARMUP as DEFAULT_WARMUP
from ._detection import SWIM_FIRST_DETECTION_PERIODS as SWIM_FIRST_DETECTION_PERIODS
from ._detection import FailureDetectionResult, failure_detection
from ._gossip import ConvergenceModel, DisseminationResult, convergence_model, dissemination
from ._lifeguard import (
    FalsePositiveComparison,
    FalsePositiveResult,
    false_positive_run,
    false_positives,
)
from ._partitions import PartitionHealResult, partition_heal
from ._traffic import BandwidthResult, bandwidth

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
