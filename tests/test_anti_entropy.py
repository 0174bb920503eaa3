"""Anti-entropy: joins, push-pull exchanges, reconnects after partitions, retention."""

from __future__ import annotations

from membership_helpers import (
    ALIVE,
    DEAD,
    LAN,
    LEFT,
    everywhere,
    formed,
    record_events,
    state,
)

from meshedge import (
    MemberRecovered,
)
from meshedge.sim import Simulation

# ---------------------------------------------------------------------- joining


def test_a_mesh_of_five_forms_by_joining_through_node_0() -> None:
    sim = Simulation(5, seed=1)
    # At first every node knows only itself.
    assert not sim.converged()
    assert [len(sim.view(i)) for i in range(5)] == [1, 1, 1, 1, 1]
    took = sim.run_until(sim.converged, 30)
    assert took < 5
    for i in range(5):
        view = sim.view(i)
        assert set(view) == set(sim.node_ids)
        assert all(m.state == ALIVE for m in view.values())


def test_push_pull_period_scales_beyond_32_members() -> None:
    # interval * (ceil(log2(N) - log2(32)) + 1) beyond 32 members.
    assert LAN.push_pull_period(1) == 30.0
    assert LAN.push_pull_period(32) == 30.0
    assert LAN.push_pull_period(33) == 60.0
    assert LAN.push_pull_period(64) == 60.0
    assert LAN.push_pull_period(65) == 90.0
    assert LAN.push_pull_period(1000) == 180.0


# ---------------------------------------------------------------------- partitions and retention


def test_a_partition_converges_on_each_side_then_heals() -> None:
    sim = formed(5, seed=11)
    sim.partition([0, 1, 2], [3, 4])

    def sides_agree() -> bool:
        return sim.converged() and all(
            state(sim, a, b) == DEAD for a in range(5) for b in range(5) if not sim.reachable(a, b)
        )

    # Bound: detection and suspicion (as for a crash), twice over for Lifeguard's
    # health slowing the probes down.
    sim.run_until(sides_agree, 120)
    assert sim.components() == [[0, 1, 2], [3, 4]]
    sim.heal()
    # Bound: a reconnect attempt to a dead member every reconnect_interval, then
    # refutation and gossip.
    sim.run_until(sim.converged, 2 * LAN.reconnect_interval + 30)
    for i in range(5):
        assert all(m.state == ALIVE for m in sim.view(i).values())
        assert len(sim.view(i)) == 5


def test_two_lone_nodes_whose_seed_is_gone_find_each_other_after_a_heal() -> None:
    # Nodes 1 and 2 joined through node 0, their only seed. Node 0 (and 3) crash, then
    # a partition leaves each of 1 and 2 alone, seeing the other dead.
    sim = formed(4, seed=21)
    sim.crash(0)
    sim.crash(3)
    sim.partition([1], [2])
    sim.run_until(lambda: state(sim, 1, 2) == DEAD and state(sim, 2, 1) == DEAD, 100)
    sim.heal()
    # A lone node retries its seeds and also a member it saw die: retrying only its
    # dead seed, neither would ever reach the other, and both would forget each other
    # after dead_retention.
    sim.run_until(sim.converged, 2 * LAN.reconnect_interval)
    assert state(sim, 1, 2) == ALIVE and state(sim, 2, 1) == ALIVE


def test_dead_and_left_members_are_forgotten_after_dead_retention() -> None:
    timing = LAN.with_(dead_retention=60.0)
    sim = formed(5, seed=16, timing=timing)
    sim.leave(3)
    sim.run_until(everywhere(sim, 3, LEFT), 10)
    sim.crash(3)
    sim.crash(4)
    sim.run_until(everywhere(sim, 4, DEAD), 60)
    # Kept for dead_retention (and retried meanwhile), then forgotten at the next
    # reconnect round, for good.
    sim.run_for(timing.dead_retention - 10)
    assert all(len(sim.view(i)) == 5 for i in range(3))
    sim.run_for(10 + timing.reconnect_interval)
    gone = {sim.node_ids[3], sim.node_ids[4]}
    for i in range(3):
        assert set(sim.view(i)) == set(sim.node_ids) - gone
    sim.run_for(120)
    assert all(set(sim.view(i)) == set(sim.node_ids) - gone for i in range(3))
    assert sim.converged()


def test_a_broadcast_missed_during_a_pause_arrives_once_by_anti_entropy() -> None:
    sim = formed(5, seed=14)
    events = record_events(sim)
    # A long pause: node 4 is declared dead, so nobody gossips to it any more, and
    # nothing about the broadcast waits in its socket buffer when it wakes up.
    resume_at = sim.now + 70
    sim.pause(4, 70)
    sim.run_until(everywhere(sim, 4, DEAD), 60)
    sim.run_for(10)
    sent_at = sim.now
    sim.broadcast(0, "config", {"version": 2})
    sim.run_for(5)
    received = sorted(d.node for d in sim.deliveries)
    assert received == [1, 2, 3]  # the gossip is over; node 4 is still paused
    assert sim.node(0).statistics()["queued_broadcasts"] == 0
    sim.run_until(lambda: len(sim.deliveries) == 4, sent_at + LAN.broadcast_retention - sim.now)
    late = sim.deliveries[-1]
    assert late.node == 4 and late.payload == {"version": 2}
    assert late.time >= resume_at
    sim.run_for(LAN.broadcast_retention)
    assert sorted(d.node for d in sim.deliveries) == [1, 2, 3, 4]  # exactly once each
    assert any(isinstance(e, MemberRecovered) for _, e, _ in events)
