"""Property-test your own convergence assumption with the simulator and hypothesis.

What it shows, with meshedge's public API only (``meshedge``, ``meshedge.sim``) plus
hypothesis:

1. a hypothesis ``RuleBasedStateMachine`` whose rules are faults on a simulated mesh of
   five nodes: crash, restart, pause, partition, heal, and letting time pass;
2. a safety invariant checked after every step: every running node sees itself ALIVE
   (nobody can make a live node believe it is dead);
3. a liveness property checked once the network is healed and has settled: every
   running node sees exactly the running nodes as alive, and every crashed node as
   dead, within a bound derived from the protocol timing (``settle_bound``).

Everything runs on the simulator's virtual clock, so a hundred virtual seconds take a
fraction of a real second, and a run is deterministic for a seed: if hypothesis finds a
failing sequence it prints the steps, the first carrying the seed, which replay it.

Run it with ``.venv/bin/python examples/convergence_property.py`` (``make test``
creates ``.venv``; ``tests/test_examples.py`` runs it too). docs/simulation.md explains
the API and the bound.
"""

from __future__ import annotations

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from meshedge import MemberState
from meshedge.sim import Simulation

NODES = 5
MAX_PAUSE = 20.0


def settle_bound(sim: Simulation, pause_left: float) -> float:
    """How long a healed mesh may take to converge (docs/simulation.md derives it)."""
    timing = sim.timing
    slowest = timing.awareness_max_multiplier  # Lifeguard may stretch probing this much
    health = slowest * (slowest + 1) / 2 * timing.probe_interval
    detection = (NODES - 1) * timing.probe_interval * slowest
    detection += timing.suspicion_timeouts(NODES)[1]
    # Each reconnect round a node on each side of a healed partition tries one of at
    # most NODES - 1 dead members, at least one of them live: both miss with probability
    # at most ((NODES - 2) / (NODES - 1)) ** 2. Allow enough rounds to push that below 1e-6.
    rounds = math.ceil(math.log(1e-6) / (2 * math.log((NODES - 2) / (NODES - 1))))
    merge = rounds * timing.reconnect_interval
    return 1.1 * (pause_left + health + detection + merge + timing.push_pull_period(NODES))


class FiveNodeMesh(RuleBasedStateMachine):
    """Random faults on five simulated nodes; the mesh must always heal."""

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        self.sim = Simulation(NODES, seed=seed)
        self.sim.run_until(self.sim.converged, timeout=30)
        self.crashed: set[int] = set()
        self.paused_until = 0.0

    def running(self) -> list[int]:
        return [i for i in range(NODES) if i not in self.crashed]

    @precondition(lambda self: len(self.crashed) < NODES - 2)
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(self.running()))
        self.sim.crash(node)
        self.crashed.add(node)

    @precondition(lambda self: self.crashed)
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        node = data.draw(st.sampled_from(sorted(self.crashed)))
        self.sim.restart(node)  # same identity, a larger boot epoch
        self.crashed.discard(node)

    @rule(data=st.data(), seconds=st.floats(0.5, MAX_PAUSE))
    def pause(self, data: st.DataObject, seconds: float) -> None:
        node = data.draw(st.sampled_from(self.running()))
        self.sim.pause(node, seconds)  # a long GC pause, a suspended laptop
        self.paused_until = max(self.paused_until, self.sim.now + seconds)

    @rule(side=st.sets(st.integers(0, NODES - 1)))
    def partition(self, side: set[int]) -> None:
        self.sim.partition(side)  # the nodes not named form the other side

    @rule()
    def heal(self) -> None:
        self.sim.heal()

    @rule(seconds=st.floats(0.1, 30.0))
    def advance(self, seconds: float) -> None:
        self.sim.run_for(seconds)

    @invariant()
    def every_running_node_sees_itself_alive(self) -> None:
        for node in self.running():
            me = self.sim.view(node)[self.sim.node_ids[node]]
            assert me.state == MemberState.ALIVE, f"node {node} sees itself {me.state.name}"

    def teardown(self) -> None:
        # Liveness: only after the network is healed and has had time to settle.
        self.sim.heal()
        bound = settle_bound(self.sim, max(0.0, self.paused_until - self.sim.now))
        dead_ids = {self.sim.node_ids[i] for i in self.crashed}

        def settled() -> bool:
            return self.sim.converged() and all(
                member.state == MemberState.DEAD
                for node in self.running()
                for member in self.sim.view(node).values()
                if member.id in dead_ids
            )

        self.sim.run_until(settled, timeout=bound, check_every=0.5)


def main() -> None:
    budget = settings(max_examples=15, stateful_step_count=15, deadline=None, database=None)
    run_state_machine_as_test(FiveNodeMesh, settings=budget)
    print(
        f"{budget.max_examples} random fault sequences of up to "
        f"{budget.stateful_step_count} steps on {NODES} simulated nodes: "
        "every running node always saw itself alive, and every healed mesh converged"
    )


if __name__ == "__main__":
    main()
