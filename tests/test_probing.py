"""Probing: SWIM's failure detector with Lifeguard (suspicion timeouts, local health).

Crashes, lossy links and the formulas a user sizes the detector with, on virtual time.
"""

from __future__ import annotations

import math

import pytest
from membership_helpers import (
    DEAD,
    LAN,
    about,
    everywhere,
    formed,
    record_events,
)

from meshedge import (
    MemberFailed,
    MemberSuspected,
    NodeId,
    Timing,
)
from meshedge.core._awareness import Awareness
from meshedge.core._suspicion import Suspicion

# ---------------------------------------------------------------------- failure detection


def test_a_crashed_node_is_suspected_then_dead_in_every_live_view() -> None:
    sim = formed(5, seed=2)
    events = record_events(sim)
    crashed_at = sim.now
    sim.crash(4)
    victim = sim.node_ids[4]
    # Bound: a full probe round over the 4 others, then the longest suspicion timeout.
    minimum, maximum = LAN.suspicion_timeouts(5)
    took = sim.run_until(everywhere(sim, 4, DEAD), 4 * LAN.probe_interval + maximum + 5)
    assert took > LAN.probe_timeout + minimum  # not declared dead before a timeout ran
    for observer in range(4):
        kinds = [kind for kind, _ in about(events, observer, victim)]
        assert kinds == [MemberSuspected, MemberFailed], (observer, kinds)
        (_, suspected_at), (_, failed_at) = about(events, observer, victim)
        assert crashed_at < suspected_at < failed_at
    # It stays dead: nobody resurrects it.
    sim.run_for(120)
    assert everywhere(sim, 4, DEAD)()
    assert sim.converged()


def test_indirect_probes_keep_a_node_alive_when_one_direct_link_is_down() -> None:
    sim = formed(5, seed=3)
    events = record_events(sim)
    sim.set_link_loss(0, 1, 1.0)
    sim.run_for(120)
    # Node 0 probed node 1 (and the other way round) many times in 120 s: every ping on
    # that link was lost, yet the ping-reqs through nodes 2, 3 and 4 got acks back.
    assert sim.statistics().network_drops["loss"] > 20
    assert not [e for _, e, _ in events if isinstance(e, MemberSuspected | MemberFailed)]
    assert sim.converged()


def test_without_helpers_a_lossy_direct_link_does_get_a_node_suspected() -> None:
    # The control for the test above: with only two nodes, there is nobody to probe
    # indirectly, so the same lossy link makes each suspect the other.
    sim = formed(2, seed=3)
    events = record_events(sim)
    sim.set_link_loss(0, 1, 1.0)
    sim.run_for(30)
    assert any(isinstance(e, MemberSuspected) for _, e, _ in events)


def test_suspicion_timeout_is_the_minimum_without_confirmations_to_wait_for() -> None:
    # Two nodes: nobody else can confirm, so Lifeguard expects k = 0 confirmations and
    # the timeout is the minimum, suspicion_mult * max(1, log10(N)) * probe_interval.
    sim = formed(2, seed=4)
    events = record_events(sim)
    sim.crash(1)
    sim.run_until(everywhere(sim, 1, DEAD), 30)
    (_, suspected_at), (_, failed_at) = about(events, 0, sim.node_ids[1])
    assert failed_at - suspected_at == pytest.approx(LAN.suspicion_timeouts(2)[0])


def test_lifeguard_confirmations_shorten_the_suspicion_timeout() -> None:
    sim = formed(7, seed=5)
    events = record_events(sim)
    sim.crash(6)
    sim.run_until(everywhere(sim, 6, DEAD), 60)
    minimum, maximum = LAN.suspicion_timeouts(7)
    first_suspected = min(t for _, e, t in events if isinstance(e, MemberSuspected))
    first_failed = min(t for _, e, t in events if isinstance(e, MemberFailed))
    # Without confirmations the first accuser would wait ``maximum`` (24 s); the others
    # confirm the suspicion within a probe round, so its timeout falls towards the
    # minimum (and never below it).
    assert minimum <= first_failed - first_suspected < maximum / 2
    for observer in range(6):
        (_, suspected_at), (_, failed_at) = about(events, observer, sim.node_ids[6])
        assert failed_at - suspected_at < maximum / 2


# ---------------------------------------------------------------------- suspicion and health


def test_suspicion_timeouts_grow_with_log10_of_the_mesh_size() -> None:
    # min = suspicion_mult * max(1, log10(N)) * probe_interval; max = 6 * min.
    assert LAN.suspicion_timeouts(1) == (4.0, 24.0)
    assert LAN.suspicion_timeouts(10) == (4.0, 24.0)
    assert LAN.suspicion_timeouts(100) == (8.0, 48.0)
    assert LAN.suspicion_timeouts(1000) == pytest.approx((12.0, 72.0))
    assert Timing.wan().suspicion_timeouts(10) == (30.0, 180.0)
    plain = LAN.with_(lifeguard=False)
    assert plain.suspicion_timeouts(100) == (8.0, 8.0)


def test_suspicion_shrinks_with_each_independent_confirmation() -> None:
    a, b, c, d, e = (NodeId(bytes([n]) * 32) for n in range(1, 6))
    suspicion = Suspicion(a, k=3, minimum=2.0, maximum=12.0, start=100.0)
    assert suspicion.deadline == 112.0
    assert suspicion.confirmed == 0
    # The accuser itself is no confirmation.
    assert not suspicion.confirm(a)
    assert suspicion.deadline == 112.0
    # n = 1: 12 - 10 * log(2) / log(4) = 7
    assert suspicion.confirm(b)
    assert suspicion.deadline == pytest.approx(107.0)
    # The same accuser twice counts once.
    assert not suspicion.confirm(b)
    assert suspicion.deadline == pytest.approx(107.0)
    # n = 2: 12 - 10 * log(3) / log(4)
    assert suspicion.confirm(c)
    assert suspicion.deadline == pytest.approx(100 + 12 - 10 * math.log(3) / math.log(4))
    # n = k = 3: the minimum.
    assert suspicion.confirm(d)
    assert suspicion.deadline == pytest.approx(102.0)
    # More than k confirmations change nothing (the timeout never drops below min).
    assert not suspicion.confirm(e)
    assert suspicion.deadline == pytest.approx(102.0)
    assert suspicion.confirmed == 3


def test_suspicion_without_expected_confirmations_uses_the_minimum() -> None:
    accuser = NodeId(bytes(32))
    assert Suspicion(accuser, k=0, minimum=4.0, maximum=24.0, start=10.0).deadline == 14.0


def test_local_health_is_clamped_and_stretches_timeouts() -> None:
    awareness = Awareness(8)
    assert awareness.scale(1.0) == 1.0
    awareness.apply_delta(-1)
    assert awareness.score == 0
    awareness.apply_delta(3)
    assert awareness.score == 3
    assert awareness.scale(0.5) == 2.0
    awareness.apply_delta(100)
    assert awareness.score == 7  # max_multiplier - 1
    assert awareness.scale(1.0) == 8.0
    awareness.apply_delta(-2)
    assert awareness.score == 5
