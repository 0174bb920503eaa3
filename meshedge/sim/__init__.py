"""The public simulator: property-test gossip convergence before you ship.

``Simulation`` drives the same protocol cores as the trio runtime over a virtual
network (loss, latency, partitions, crashes, pauses) on a virtual clock, deterministic
for a seed. See ``docs/simulation.md``.
"""

from ._simulation import Delivery, SimStatistics, Simulation, SimulationTimeout

__all__ = ["Delivery", "SimStatistics", "Simulation", "SimulationTimeout"]
